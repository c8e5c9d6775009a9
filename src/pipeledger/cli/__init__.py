"""The command-line interface: a thin layer over the library (the library never imports it)."""
