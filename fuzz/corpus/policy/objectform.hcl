name = "x"
path = { "a/+/b*" = { capabilities = ["read", "subscribe"] }, "*" = { capabilities = [] } }
