path "a" {
  capabilities = ["reed"]
}
