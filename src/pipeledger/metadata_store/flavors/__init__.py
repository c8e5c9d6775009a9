"""Metadata-store flavors: each builds a store for one kind of database from its config."""
