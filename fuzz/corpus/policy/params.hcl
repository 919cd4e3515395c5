path "transit/encrypt/*" {
  capabilities = ["update"]
  allowed_parameters = {
    "plaintext" = []
    "context" = ["a*", 1, true]
  }
  denied_parameters { "key_version" = [] }
  required_parameters = ["plaintext"]
  min_wrapping_ttl = "1s"
  max_wrapping_ttl = 3600
}
