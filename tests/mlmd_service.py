"""A real ML Metadata gRPC service for tests, on a loopback port.

The ``ml-metadata`` wheel ships the service's gRPC definitions and the store's
native library, but not the ``metadata_store_server`` binary that Kubeflow
deploys. This module serves ``ml_metadata.MetadataStoreService`` with grpcio and
hands every request, still serialized, to the library's own store (the same
C++ code the server binary runs) on a SQLite file; errors come back with the
library's status code. The kubeflow flavor thus talks real gRPC to MLMD's real
storage code.

Methods the library does not expose (e.g. ``GetLineageGraph``) answer
``UNIMPLEMENTED``.
"""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from ml_metadata.metadata_store.pywrap.metadata_store_extension import metadata_store as native
from ml_metadata.proto import metadata_store_pb2, metadata_store_service_pb2

_SERVICE = metadata_store_service_pb2.DESCRIPTOR.services_by_name["MetadataStoreService"]


def _identity(data: bytes) -> bytes:
    return data


class MlmdTestService:
    """``MetadataStoreService`` on ``127.0.0.1:<port>`` backed by MLMD's store on a SQLite file.

    ``reset(path)`` switches to a new, empty database file, so one server can
    serve many tests. Calls are serialized with a lock: the native store handle
    holds one SQLite connection.
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        self._handle: Any = None
        self.path = path
        self.calls: list[str] = []
        self.reset(path)
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        handlers = {
            method.name: grpc.unary_unary_rpc_method_handler(
                self._handler(method.name), request_deserializer=_identity, response_serializer=_identity
            )
            for method in _SERVICE.methods
        }
        self._server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE.full_name, handlers),))
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self._server.start()

    def reset(self, path: Path) -> None:
        """Serve a fresh MLMD database at ``path`` (created with MLMD's schema)."""
        config = metadata_store_pb2.ConnectionConfig()
        config.sqlite.filename_uri = str(path)
        config.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        with self._lock:
            self._handle = native.CreateMetadataStore(
                config.SerializeToString(), metadata_store_pb2.MigrationOptions().SerializeToString()
            )
            self.path = path
            self.calls = []

    def _handler(self, name: str) -> Any:
        method = getattr(native, name, None)

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            self.calls.append(name)
            if method is None:
                context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{name} is not served by the MLMD test service")
            with self._lock:
                response, error, code = method(self._handle, request)
            if code != 0:
                status = next(s for s in grpc.StatusCode if s.value[0] == code)
                context.abort(status, error.decode("utf-8", "replace"))
            return bytes(response)

        return handle

    def stop(self) -> None:
        """Stop serving (in-flight calls get one second)."""
        self._server.stop(1).wait()
