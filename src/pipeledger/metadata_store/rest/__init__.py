"""The ``rest`` metadata store: the store contract over HTTP, served by ``pipeledger server``.

``protocol.py`` (shared with the server) derives the routes and their encoding from the
contract; ``transport.py`` makes the calls (keep-alive, retries, errors); ``store.py`` is the
:class:`~pipeledger.metadata_store.base.MetadataStore` implementation. Needs ``httpx`` only
(``pip install 'pipeledger[rest]'``).
"""

from pipeledger.metadata_store.rest.store import RestMetadataStore

__all__ = ["RestMetadataStore"]
