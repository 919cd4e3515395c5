path "a\u002a" { capabilities = ["re\u0061d"] }
