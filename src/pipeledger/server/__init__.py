"""``pipeledger server``: the HTTP/JSON API in front of a stack's metadata store.

``app.py`` builds the ASGI application (FastAPI): ``/health``, ``/ready`` and the versioned
API under ``/api/v1`` (its OpenAPI document at ``/api/v1/openapi.json``). ``store_routes.py``
makes one route per contract method from :mod:`pipeledger.metadata_store.rest.protocol`;
every route goes through :func:`pipeledger.server.auth.authorize`, the one place that will
check callers. ``process.py`` runs it (uvicorn, in the foreground or as a daemon). The
``rest`` metadata-store flavor (:mod:`pipeledger.metadata_store.rest`) is its client.

The server reads and writes records through the :class:`MetadataStore` contract only, and
never imports execution code (pipelines, orchestrators, steps, caching).
"""
