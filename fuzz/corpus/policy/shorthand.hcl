path "secret/*" { policy = "write" }
path "secret/ro/*" { policy = "read" }
path "secret/ro/hidden" { policy = "deny" }
path "sys/*" { policy = "sudo" }
