"""The gRPC connection to an ML Metadata service: calls, retries, paging, error translation."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import grpc
from ml_metadata.proto import metadata_store_pb2 as mlmd
from ml_metadata.proto import metadata_store_service_pb2_grpc as service_grpc

from pipeledger.exceptions import MetadataStoreError, NotFoundError, StoreUnavailableError

#: MLMD returns at most this many nodes per page.
PAGE_SIZE = 100
_RETRIES = 5


class AlreadyExistsError(MetadataStoreError):
    """MLMD refused a node whose (type, name) or external id is taken."""


class MlmdConnection:
    """Calls the ``MetadataStoreService`` at ``host:port``.

    Every call has a deadline of ``timeout`` seconds; calls MLMD aborts (a
    concurrent transaction won) are retried with jittered backoff. gRPC errors
    become pipeledger errors: unreachable -> :class:`StoreUnavailableError`,
    ``NOT_FOUND`` -> :class:`NotFoundError`, ``ALREADY_EXISTS`` ->
    :class:`AlreadyExistsError`, others -> :class:`MetadataStoreError`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 10.0,
        credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.where = f"ML Metadata service at {host}:{port}"
        self.timeout = timeout
        target = f"{host}:{port}"
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._stub = service_grpc.MetadataStoreServiceStub(self._channel)

    def call(self, method: str, request: Any) -> Any:
        """Send ``request`` to ``method`` and return its response."""
        rpc = getattr(self._stub, method)
        for attempt in range(_RETRIES + 1):
            try:
                return rpc(request, timeout=self.timeout)
            except grpc.RpcError as exc:
                code = exc.code()
                if code == grpc.StatusCode.ABORTED and attempt < _RETRIES:
                    time.sleep(random.uniform(0.01, 0.05) * 2**attempt)
                    continue
                raise self._translate(method, exc) from None
        raise AssertionError("unreachable")

    def _translate(self, method: str, exc: grpc.RpcError) -> Exception:
        code, details = exc.code(), _first_line(exc.details() or "")
        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            reason = "did not answer within the timeout" if code == grpc.StatusCode.DEADLINE_EXCEEDED else details
            return StoreUnavailableError(
                f"cannot reach the {self.where}: {reason}; check the host and port (in Kubeflow: "
                "`kubectl -n kubeflow port-forward svc/metadata-grpc-service 8080:8080`)"
            )
        if code == grpc.StatusCode.NOT_FOUND:
            return NotFoundError(details)
        if code == grpc.StatusCode.ALREADY_EXISTS:
            return AlreadyExistsError(details)
        return MetadataStoreError(f"the {self.where} refused {method}: {code.name}: {details}")

    def pages(self, method: str, request: Any, field: str) -> Iterator[Any]:
        """Every node of the repeated ``field`` of ``method``'s responses, following page tokens."""
        if not request.HasField("options"):
            request.options.CopyFrom(mlmd.ListOperationOptions())
        request.options.max_result_size = PAGE_SIZE
        while True:
            response = self.call(method, request)
            yield from getattr(response, field)
            if not response.next_page_token:
                return
            request.options.next_page_token = response.next_page_token

    def close(self) -> None:
        """Close the channel."""
        self._channel.close()


def _first_line(message: str, limit: int = 300) -> str:
    """MLMD's messages may quote whole nodes over many lines: keep the first line, shortened."""
    line = message.strip().splitlines()[0] if message.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"
