# KV v2 for team A
path "secret/data/team-a/*" {
  capabilities = ["create", "read", "update", "patch", "delete"]
}
path "secret/metadata/team-a/*" {
  capabilities = ["list", "read"]
}
// one segment wildcard
path "secret/+/shared/*" { capabilities = ["read"] }
/* deny the admin area */
path "secret/data/team-a/admin" { capabilities = ["deny"] }
