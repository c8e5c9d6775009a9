"""Component types and flavors.

A **flavor** is one implementation of a component type: a name, a description, a
pydantic configuration model and a factory that builds the component from a
validated configuration. Built-in flavors are listed in
:mod:`pipeledger.stack.flavor_registry`; third-party packages add flavors through
the ``pipeledger.flavors`` entry-point group, and users with
``pipeledger <component> flavor register module:Class``.

Writing a metadata-store flavor::

    class MyStoreConfig(FlavorConfig):
        url: str

    class MyStoreFlavor(MetadataStoreFlavor):
        name = "mystore"
        description = "Metadata in my database."
        config_class = MyStoreConfig

        def create(self, component_name, config, home):
            return SqlMetadataStore(Database(config.url, display_name=...), flavor=self.name)
"""

from __future__ import annotations

import abc
import builtins
import enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr

from pipeledger.exceptions import ConfigError

if TYPE_CHECKING:
    from pipeledger.artifacts.store import ArtifactStore
    from pipeledger.metadata_store.base import MetadataStore
    from pipeledger.orchestrators.base import Orchestrator


class ComponentType(str, enum.Enum):
    """The three kinds of stack component."""

    ORCHESTRATOR = "orchestrator"
    ARTIFACT_STORE = "artifact_store"
    METADATA_STORE = "metadata_store"

    def __str__(self) -> str:
        return self.value

    @property
    def label(self) -> str:
        """The CLI noun: ``metadata-store``."""
        return self.value.replace("_", "-")

    @property
    def human(self) -> str:
        """Human wording: ``metadata store``."""
        return self.value.replace("_", " ")


class FlavorConfig(BaseModel):
    """Base of flavor configuration models: unknown fields are refused.

    Declare secrets (passwords, tokens) as :class:`pydantic.SecretStr`: they must
    be given as references (``${env:NAME}`` or ``${file:/path}``), are resolved
    only when the component is built, and are never shown or recorded.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @classmethod
    def secret_fields(cls) -> list[str]:
        """Names of the fields typed ``SecretStr`` (or ``SecretStr | None``)."""
        found = []
        for name, field in cls.model_fields.items():
            annotation = field.annotation
            args = getattr(annotation, "__args__", ())
            if annotation is SecretStr or SecretStr in args:
                found.append(name)
        return found

    def public_dict(self) -> dict[str, Any]:
        """The configuration without its secret fields, JSON-compatible, with credentials cut
        from every URL in it (:func:`pipeledger.redact.redact_json`): this is what stack
        snapshots record and ``describe`` shows."""
        from pipeledger.redact import redact_json

        return dict(redact_json(self.model_dump(mode="json", exclude=set(self.secret_fields()))))


class Flavor(abc.ABC):
    """One implementation of a component type. Subclasses set the class attributes."""

    #: The flavor's name, as given to ``--flavor``.
    name: ClassVar[str]
    #: Which component type it implements.
    type: ClassVar[ComponentType]
    #: One line shown by ``flavor list``.
    description: ClassVar[str] = ""
    #: ``built-in`` or the name of the package that provides it.
    integration: ClassVar[str] = "built-in"
    #: The pydantic model of its configuration.
    config_class: ClassVar[builtins.type[FlavorConfig]] = FlavorConfig

    def default_config(self, component_name: str, home: Path) -> dict[str, Any]:
        """Values filled in when ``register`` does not give them (e.g. paths under the home)."""
        return {}

    @abc.abstractmethod
    def create(self, component_name: str, config: Any, home: Path) -> Any:
        """Build the component from a validated config (secrets already resolved)."""

    @classmethod
    def source(cls) -> str:
        """``module:QualifiedName`` of this class."""
        return f"{cls.__module__}:{cls.__qualname__}"


class MetadataStoreFlavor(Flavor):
    """A flavor of metadata store: :meth:`create` returns an open :class:`MetadataStore`."""

    type = ComponentType.METADATA_STORE

    #: Whether the store lives on this machine only (e.g. a SQLite file), so that processes on
    #: other machines cannot record into it: orchestrators with workers elsewhere refuse it.
    #: Server databases and services reachable over the network leave it False.
    machine_local: ClassVar[bool] = False

    @abc.abstractmethod
    def create(self, component_name: str, config: Any, home: Path) -> MetadataStore:
        """Open the store (and check its schema)."""

    def migrate(self, component_name: str, config: Any, home: Path) -> tuple[str | None, str]:
        """Upgrade the store's schema to this pipeledger's (``pipeledger metadata-store migrate``),
        given the validated config with its secrets resolved. Returns the schema revisions before
        (None: an empty database) and after; equal when there was nothing to do.

        Flavors whose store has a schema of its own override this; the default is for stores
        without one (e.g. ``kubeflow``, whose ML Metadata types are registered when it opens).

        Raises:
            ConfigError: the store has no schema to migrate (this default).
        """
        raise ConfigError(
            f"metadata store {component_name!r} (flavor {self.name}) does not use pipeledger's SQL schema; "
            "it has nothing to migrate"
        )


class ArtifactStoreFlavor(Flavor):
    """A flavor of artifact store: :meth:`create` returns an :class:`ArtifactStore`."""

    type = ComponentType.ARTIFACT_STORE

    @abc.abstractmethod
    def create(self, component_name: str, config: Any, home: Path) -> ArtifactStore:
        """Build the artifact store."""


class OrchestratorFlavor(Flavor):
    """A flavor of orchestrator: :meth:`create` returns an :class:`Orchestrator`."""

    type = ComponentType.ORCHESTRATOR

    @abc.abstractmethod
    def create(self, component_name: str, config: Any, home: Path) -> Orchestrator:
        """Build the orchestrator."""
