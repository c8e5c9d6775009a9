"""The metadata-store contract suite, for any implementation of :class:`~pipeledger.metadata_store.base.MetadataStore`."""
