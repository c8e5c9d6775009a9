"""Finding flavors by component type and name.

Three sources, in this order of precedence:

1. built-in flavors (:data:`BUILTIN_FLAVORS`), imported only when used;
2. flavors of installed packages, declared in the ``pipeledger.flavors``
   entry-point group (``name = "package.module:FlavorClass"``);
3. flavors users registered with ``pipeledger <component> flavor register``,
   recorded by source in the configuration file.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass

from pipeledger.exceptions import ConfigError, FlavorNotFoundError
from pipeledger.stack.flavor import ComponentType, Flavor

ENTRY_POINT_GROUP = "pipeledger.flavors"

BUILTIN_FLAVORS: dict[ComponentType, dict[str, str]] = {
    ComponentType.ORCHESTRATOR: {
        "local": "pipeledger.orchestrators.local:LocalOrchestratorFlavor",
        "dask": "pipeledger.integrations.dask.orchestrator:DaskOrchestratorFlavor",
    },
    ComponentType.ARTIFACT_STORE: {
        "local": "pipeledger.artifacts.flavors:LocalArtifactStoreFlavor",
        "rest": "pipeledger.artifacts.flavors:RestArtifactStoreFlavor",
        "s3": "pipeledger.artifacts.s3:S3ArtifactStoreFlavor",
        "gcs": "pipeledger.artifacts.gcs:GcsArtifactStoreFlavor",
    },
    ComponentType.METADATA_STORE: {
        "sqlite": "pipeledger.metadata_store.flavors.sqlite:SqliteMetadataStoreFlavor",
        "mysql": "pipeledger.metadata_store.flavors.mysql:MySQLMetadataStoreFlavor",
        "postgresql": "pipeledger.metadata_store.flavors.postgresql:PostgreSQLMetadataStoreFlavor",
        "kubeflow": "pipeledger.metadata_store.flavors.kubeflow:KubeflowMetadataStoreFlavor",
        "kubernetes": "pipeledger.metadata_store.flavors.kubernetes:KubernetesMetadataStoreFlavor",
        "rest": "pipeledger.metadata_store.flavors.rest:RestMetadataStoreFlavor",
    },
}


@dataclass(frozen=True)
class FlavorInfo:
    """Where a flavor comes from: its class's source and how it was found."""

    type: ComponentType
    name: str
    source: str
    origin: str  # "built-in", "entry point <dist>", "registered"


def load_flavor_class(source: str) -> type[Flavor]:
    """Import ``module:Class`` (or ``module.Class``) and check it is a concrete flavor.

    Raises:
        ConfigError: it cannot be imported, or is not a complete Flavor subclass.
    """
    module_name, sep, attr = source.partition(":")
    if not sep:
        module_name, _, attr = source.rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"flavor source {source!r} must look like package.module:FlavorClass")
    try:
        obj: object = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import flavor {source!r}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(obj, type) or not issubclass(obj, Flavor):
        raise ConfigError(
            f"{source!r} is not a flavor: subclass pipeledger.stack.flavor.MetadataStoreFlavor "
            "(or ArtifactStoreFlavor / OrchestratorFlavor)"
        )
    missing = [a for a in ("name", "type") if not isinstance(getattr(obj, a, None), str)]
    if missing:
        raise ConfigError(f"flavor {source!r} does not set {', '.join(missing)}")
    if getattr(obj, "__abstractmethods__", None):
        methods = ", ".join(sorted(obj.__abstractmethods__))
        raise ConfigError(f"flavor {source!r} does not implement {methods}")
    return obj


def _entry_points() -> list[importlib.metadata.EntryPoint]:
    return list(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP))


class FlavorRegistry:
    """Flavors known in this process, given the user-registered sources.

    Args:
        registered: sources recorded in the configuration file.
    """

    def __init__(self, registered: list[str] | None = None) -> None:
        self._registered = list(registered or [])
        self._infos: dict[tuple[ComponentType, str], FlavorInfo] | None = None
        self.broken: dict[str, str] = {}  # source -> why it could not be loaded

    def _discover(self) -> dict[tuple[ComponentType, str], FlavorInfo]:
        if self._infos is not None:
            return self._infos
        infos: dict[tuple[ComponentType, str], FlavorInfo] = {}
        for type_, flavors in BUILTIN_FLAVORS.items():
            for name, source in flavors.items():
                infos[(type_, name)] = FlavorInfo(type_, name, source, "built-in")
        extra = [(ep.value, f"package {ep.dist.name}" if ep.dist else "entry point") for ep in _entry_points()]
        extra += [(source, "registered") for source in self._registered]
        for source, origin in extra:
            try:
                cls = load_flavor_class(source)
            except ConfigError as exc:
                self.broken[source] = str(exc)  # a broken plug-in must not break the CLI
                continue
            key = (ComponentType(cls.type), cls.name)
            infos.setdefault(key, FlavorInfo(key[0], cls.name, source, origin))
        self._infos = infos
        return infos

    def infos(self, type_: ComponentType) -> list[FlavorInfo]:
        """The flavors of ``type_``: built-in first, then by name."""
        found = [i for (t, _), i in self._discover().items() if t == type_]
        return sorted(found, key=lambda i: (i.origin != "built-in", i.name))

    def get(self, type_: ComponentType, name: str) -> Flavor:
        """An instance of the flavor ``name`` of ``type_``.

        Raises:
            FlavorNotFoundError: no such flavor (the message lists the known ones).
        """
        info = self._discover().get((type_, name))
        if info is None:
            known = ", ".join(i.name for i in self.infos(type_))
            raise FlavorNotFoundError(
                f"unknown {type_.human} flavor {name!r}; known flavors: {known} "
                f"(see `pipeledger {type_.label} flavor list`)"
                + "".join(f"; not loaded: {why}" for why in self.broken.values())
            )
        return load_flavor_class(info.source)()
