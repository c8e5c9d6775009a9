"""One module per measured system; each defines ``System`` with the same methods."""
