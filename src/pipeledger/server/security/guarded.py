"""A metadata store seen with one principal's roles: the server's rules, applied in process.

The web UI served by ``pipeledger server`` reads through a :class:`GuardedStore`, so a page shows
exactly what the API would answer the same caller: every contract method goes through
:func:`~pipeledger.server.security.policy.guard` (its arguments narrowed to the caller's
projects, objects of other projects absent, too-low roles refused) before it runs on the
server's store, and its result through the rule's filter (lineage placeholders). A method
without a rule is refused, as the API refuses a route without one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from pipeledger.exceptions import AccessDeniedError
from pipeledger.metadata_store.base import MetadataStore
from pipeledger.metadata_store.rest.protocol import contract_methods
from pipeledger.server.security.access import Access
from pipeledger.server.security.policy import STORE_RULES, Answer, guard
from pipeledger.server.security.principal import Principal


class _Guarded(MetadataStore):
    """The methods that are no contract call: the inner store's description and id, and no
    ``close`` (the server owns the store)."""

    def __init__(self, store: MetadataStore, principal: Principal) -> None:
        self.inner = store
        self.principal = principal
        self.flavor = store.flavor
        self.project = store.project

    def __repr__(self) -> str:
        return f"<GuardedStore {self.principal.name} on {self.inner!r}>"

    def close(self) -> None:
        """Nothing: the server closes its store when it stops."""

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def store_id(self) -> str | None:
        return self.inner.store_id()

    def projects_of(self, kind: str, keys: Sequence[str]) -> dict[str, list[str]]:
        return self.inner.projects_of(kind, keys)


def _guarded(name: str) -> Callable[..., Any]:
    signature = inspect.signature(getattr(MetadataStore, name))

    def call(self: _Guarded, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()  # the rule sees every argument, as the route does (``projects``...)
        arguments = {key: value for key, value in bound.arguments.items() if key != "self"}
        if name not in STORE_RULES:
            raise AccessDeniedError(f"{name} has no access rule: refused")
        outcome = guard(name, self.principal, Access(self.principal, self.inner), arguments)
        if isinstance(outcome, Answer):
            return outcome.value
        result = getattr(self.inner, name)(**arguments)
        return result if outcome is None else outcome(result)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = getattr(MetadataStore, name).__doc__
    return call


def _unreachable(name: str) -> Callable[..., Any]:
    def call(self: _Guarded, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"{name} is reached only through the guarded public methods")

    return call


def _build() -> type[_Guarded]:
    namespace: dict[str, Any] = {name: _guarded(name) for name in contract_methods()}
    for name in MetadataStore.__abstractmethods__:
        namespace.setdefault(name, _unreachable(name))
    namespace["__doc__"] = "The store ``store`` as ``principal`` may see and change it (see the module docstring)."
    namespace["__module__"] = __name__
    return type("GuardedStore", (_Guarded,), namespace)


GuardedStore = _build()
"""``GuardedStore(store, principal)``: ``store`` as ``principal`` may see and change it."""


def guarded(store: MetadataStore, principal: Principal) -> MetadataStore:
    """``store`` for ``principal``: itself for a server administrator (every rule passes), else a
    :class:`GuardedStore`."""
    return store if principal.server_admin else GuardedStore(store, principal)
