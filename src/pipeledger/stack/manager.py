"""Registering, changing and resolving components and stacks: what the CLI calls.

Every change goes through :meth:`ConfigStore.edit` (locked, atomic). Component
configurations are validated against their flavor's model when they are
registered or updated; secrets must be references (:mod:`.secrets`).
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from pipeledger.exceptions import ComponentNotFoundError, ConfigError
from pipeledger.redact import redact_json
from pipeledger.stack import secrets
from pipeledger.stack.config import DEFAULT, ComponentEntry, ConfigFile, ConfigStore, StackEntry
from pipeledger.stack.flavor import ComponentType, Flavor, FlavorConfig, MetadataStoreFlavor
from pipeledger.stack.flavor_registry import FlavorInfo, FlavorRegistry, load_flavor_class
from pipeledger.stack.home import pipeledger_home
from pipeledger.stack.recipe import ComponentRecipe
from pipeledger.text import agree, article

_NAME_HELP = "letters, digits, '.', '_' and '-', starting with a letter or digit, at most 64"


def check_name(kind: str, name: str) -> None:
    """Refuse names that would be awkward in files, URLs and shells."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", name or ""):
        raise ConfigError(f"invalid {kind} name {name!r}: use {_NAME_HELP} characters")


def describe_fields(config_class: type[BaseModel]) -> str:
    """``host (str), port (int), password (secret)`` for error messages and help."""
    parts = []
    for name, field in config_class.model_fields.items():
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        if annotation is SecretStr or SecretStr in args:
            type_name = "secret reference"
        elif typing.get_origin(annotation) is typing.Literal:
            type_name = " | ".join(str(a) for a in args)
        else:
            type_name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
        parts.append(f"{name} ({type_name})")
    return ", ".join(parts) or "none"


def validate_config(flavor: Flavor, component: str, values: dict[str, Any], home: Path) -> FlavorConfig:
    """Validate ``values`` (plus the flavor's defaults) against the flavor's config model.

    Raises:
        ConfigError: an unknown field (listing the valid ones), a value of the wrong
            type (naming the field and the expected type), a missing required field, or
            a literal secret.
    """
    model = flavor.config_class
    where = f"{flavor.type.human} {component!r} (flavor {flavor.name})"
    unknown = sorted(set(values) - set(model.model_fields))
    if unknown:
        raise ConfigError(f"{where}: unknown field {unknown[0]!r}; valid fields: {describe_fields(model)}")
    for field in model.secret_fields():
        secrets.check_reference(field, values.get(field), where)
    merged = {**flavor.default_config(component, home), **values}
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        if not error["loc"]:  # a rule across fields (a model validator): its own message says it all
            raise ConfigError(f"{where}: {str(error['msg']).removeprefix('Value error, ')}") from None
        field = ".".join(str(p) for p in error["loc"]) or "(config)"
        expected = model.model_fields.get(str(error["loc"][0])) if error["loc"] else None
        type_name = getattr(expected.annotation, "__name__", str(expected.annotation)) if expected else "?"
        if expected is not None and typing.get_origin(expected.annotation) is typing.Literal:
            type_name = " | ".join(str(a) for a in typing.get_args(expected.annotation))
        given = f", got {redact_json(error['input'])!r}" if error["type"] != "missing" else ""
        raise ConfigError(
            f"{where}: field {field!r}: {error['msg']} (expected {type_name}{given}); "
            f"valid fields: {describe_fields(model)}"
        ) from None


def resolve_config(flavor: Flavor, component: str, values: dict[str, Any], home: Path) -> FlavorConfig:
    """The validated config with its secret references replaced by the secrets themselves."""
    config = validate_config(flavor, component, values, home)
    where = f"{flavor.type.human} {component!r}"
    for field in config.secret_fields():
        reference = values.get(field)
        if reference is not None:
            setattr(config, field, SecretStr(secrets.resolve(field, reference, where)))
    return config


def _stored_values(validated: FlavorConfig, given: dict[str, Any]) -> dict[str, Any]:
    """The given fields as their validated (typed) values; secret fields keep their reference."""
    dumped = validated.model_dump(mode="json")
    secret = set(validated.secret_fields())
    return {k: given[k] if k in secret else dumped[k] for k in given}


class StackManager:
    """Components and stacks of one pipeledger home.

    Args:
        home: the home directory (default ``$PIPELEDGER_HOME``).
    """

    def __init__(self, home: Path | None = None) -> None:
        self.home = home or pipeledger_home()
        self.store = ConfigStore(self.home)

    # --------------------------------------------------------------- flavors

    def flavors(self, config: ConfigFile | None = None) -> FlavorRegistry:
        """The flavor registry, including the user-registered flavors."""
        return FlavorRegistry((config or self.store.load()).flavors)

    def list_flavors(self, type_: ComponentType) -> list[tuple[FlavorInfo, Flavor]]:
        """Every known flavor of ``type_`` with an instance (for descriptions)."""
        registry = self.flavors()
        return [(info, registry.get(type_, info.name)) for info in registry.infos(type_)]

    def register_flavor(self, type_: ComponentType, source: str) -> type[Flavor]:
        """Validate the flavor class at ``source`` and remember it.

        Raises:
            ConfigError: not importable, not a flavor of ``type_``, incomplete, or its
                name is already taken.
        """
        cls = load_flavor_class(source)
        if ComponentType(cls.type) is not type_:
            actual = ComponentType(cls.type).human
            raise ConfigError(f"{source!r} is {article(actual)} flavor, not {article(type_.human)} one")
        with self.store.edit() as config:
            registry = self.flavors(config)
            taken = [i for i in registry.infos(type_) if i.name == cls.name]
            if taken and taken[0].source != source:
                raise ConfigError(
                    f"{article(type_.human)} flavor named {cls.name!r} already exists ({taken[0].origin}, "
                    f"{taken[0].source}); give yours another name"
                )
            if source not in config.flavors:
                config.flavors.append(source)
        return cls

    # ------------------------------------------------------------ components

    def get_component(self, type_: ComponentType, name: str, config: ConfigFile | None = None) -> ComponentEntry:
        """The registered component (``default`` included).

        Raises:
            ComponentNotFoundError: none of that name (lists the registered ones).
        """
        config = config or self.store.load()
        entry = config.component(type_, name)
        if entry is None:
            raise ComponentNotFoundError(
                f"no {type_.human} named {name!r}; registered: {', '.join(config.component_names(type_))}"
            )
        return entry

    def list_components(self, type_: ComponentType) -> list[tuple[str, ComponentEntry]]:
        """``(name, entry)`` of every component of ``type_``, ``default`` first."""
        config = self.store.load()
        return [(n, config.component(type_, n)) for n in config.component_names(type_)]  # type: ignore[misc]

    def register_component(self, type_: ComponentType, name: str, flavor: str, values: dict[str, Any]) -> None:
        """Register a component after validating its configuration.

        Raises:
            ConfigError: bad name, name taken, unknown flavor, invalid configuration.
        """
        check_name(type_.human, name)
        with self.store.edit() as config:
            if config.component(type_, name) is not None:
                raise ConfigError(
                    f"{article(type_.human)} named {name!r} is already registered; use `pipeledger "
                    f"{type_.label} update {name}` or pick another name"
                )
            flavor_obj = self.flavors(config).get(type_, flavor)
            validated = validate_config(flavor_obj, name, values, self.home)
            # Defaults that depend on the home (paths) are fixed now, so that the component keeps
            # pointing at the same data if $PIPELEDGER_HOME changes later.
            stored = _stored_values(validated, {**flavor_obj.default_config(name, self.home), **values})
            config.components.setdefault(type_, {})[name] = ComponentEntry(flavor=flavor, config=stored)

    def update_component(self, type_: ComponentType, name: str, values: dict[str, Any]) -> None:
        """Change some configuration values of a registered component (validated).

        Raises:
            ConfigError: the default component, unknown component, invalid values.
        """
        if name == DEFAULT:
            raise ConfigError(f"the default {type_.human} cannot be changed; register another one")
        with self.store.edit() as config:
            entry = self.get_component(type_, name, config)
            merged = {**entry.config, **values}
            validated = validate_config(self.flavors(config).get(type_, entry.flavor), name, merged, self.home)
            config.components[type_][name] = ComponentEntry(
                flavor=entry.flavor, config=_stored_values(validated, merged)
            )

    def delete_component(self, type_: ComponentType, name: str) -> None:
        """Remove a component's registration (its data is left alone).

        Raises:
            ConfigError: the default component, or one a stack uses (naming the stacks).
        """
        if name == DEFAULT:
            raise ConfigError(f"the default {type_.human} cannot be deleted")
        with self.store.edit() as config:
            self.get_component(type_, name, config)
            users = config.stacks_using(type_, name)
            if users:
                raise ConfigError(
                    f"{type_.human} {name!r} is used by {agree(len(users), 'stack')} {', '.join(users)}; "
                    f"delete or change {'those stacks' if len(users) > 1 else 'that stack'} first"
                )
            del config.components[type_][name]

    def describe_component(self, type_: ComponentType, name: str) -> dict[str, Any]:
        """Name, flavor, the full configuration (defaults filled in, secrets as references only)
        and the stacks using it."""
        config = self.store.load()
        entry = self.get_component(type_, name, config)
        flavor = self.flavors(config).get(type_, entry.flavor)
        validated = validate_config(flavor, name, entry.config, self.home)
        shown = validated.public_dict()
        for field in validated.secret_fields():
            shown[field] = entry.config.get(field)  # the reference, never a secret
        return {
            "name": name,
            "type": type_.value,
            "flavor": entry.flavor,
            "config": shown,
            "stacks": config.stacks_using(type_, name),
        }

    def build_component(self, type_: ComponentType, name: str, config: ConfigFile | None = None) -> Any:
        """Build the component (resolving its secrets)."""
        config = config or self.store.load()
        entry = self.get_component(type_, name, config)
        flavor = self.flavors(config).get(type_, entry.flavor)
        return flavor.create(name, resolve_config(flavor, name, entry.config, self.home), self.home)

    def component_recipe(self, type_: ComponentType, name: str, config: ConfigFile | None = None) -> ComponentRecipe:
        """How to build the component in another process: its flavor's import path and its validated
        configuration (defaults filled in) with secret fields as their references."""
        config = config or self.store.load()
        entry = self.get_component(type_, name, config)
        flavor = self.flavors(config).get(type_, entry.flavor)
        validated = validate_config(flavor, name, entry.config, self.home)
        secret = set(validated.secret_fields())
        values = {k: v for k, v in validated.model_dump(mode="json").items() if k not in secret}
        values.update({k: v for k, v in entry.config.items() if k in secret})
        return ComponentRecipe(type_, name, entry.flavor, flavor.source(), values, str(self.home))

    def component_snapshot(self, type_: ComponentType, name: str, config: ConfigFile) -> dict[str, Any]:
        """Name, flavor and non-secret configuration, as recorded with runs."""
        entry = self.get_component(type_, name, config)
        flavor = self.flavors(config).get(type_, entry.flavor)
        validated = validate_config(flavor, name, entry.config, self.home)
        return {"name": name, "flavor": entry.flavor, "config": validated.public_dict()}

    def migrate_metadata_store(self, name: str | None = None) -> tuple[str | None, str]:
        """Upgrade the schema of metadata store ``name`` (default: the active stack's) to this
        library's revision, through its flavor's :meth:`~MetadataStoreFlavor.migrate`. Returns
        the revisions before and after.

        Raises:
            ConfigError: the flavor has no schema to migrate (e.g. ``kubeflow``).
            SchemaVersionError: the database is newer than this library.
            StoreUnavailableError: the database cannot be reached.
        """
        config = self.store.load()
        if name is None:
            name = self.get_stack_entry(self.active_stack_name(), config).metadata_store
        entry = self.get_component(ComponentType.METADATA_STORE, name, config)
        flavor = self.flavors(config).get(ComponentType.METADATA_STORE, entry.flavor)
        if not isinstance(flavor, MetadataStoreFlavor):  # a plain Flavor that only sets type
            raise ConfigError(
                f"metadata store {name!r} (flavor {entry.flavor}) is not a MetadataStoreFlavor; "
                "it has nothing to migrate"
            )
        return flavor.migrate(name, resolve_config(flavor, name, entry.config, self.home), self.home)

    # ---------------------------------------------------------------- stacks

    def get_stack_entry(self, name: str, config: ConfigFile | None = None) -> StackEntry:
        """The registered stack ``name``.

        Raises:
            ComponentNotFoundError: none of that name (lists the registered ones).
        """
        config = config or self.store.load()
        entry = config.stack(name)
        if entry is None:
            raise ComponentNotFoundError(f"no stack named {name!r}; registered: {', '.join(config.stack_names())}")
        return entry

    def list_stacks(self) -> tuple[list[tuple[str, StackEntry]], str]:
        """Every stack and the name of the active one (as configured: it may name no stack, see
        :meth:`active_stack_name`)."""
        config = self.store.load()
        return [(n, config.stack(n)) for n in config.stack_names()], config.active_stack  # type: ignore[misc]

    def register_stack(self, name: str, orchestrator: str, artifact_store: str, metadata_store: str) -> None:
        """Register a stack of existing components.

        Raises:
            ConfigError: bad or taken name, or a component that is not registered.
        """
        check_name("stack", name)
        with self.store.edit() as config:
            if config.stack(name) is not None:
                raise ConfigError(f"a stack named {name!r} is already registered; pick another name")
            entry = StackEntry(orchestrator=orchestrator, artifact_store=artifact_store, metadata_store=metadata_store)
            for type_ in ComponentType:
                self.get_component(type_, entry.component(type_), config)
            config.stacks[name] = entry

    def delete_stack(self, name: str) -> None:
        """Remove a stack's registration.

        Raises:
            ConfigError: the default or the active stack, or an unknown one.
        """
        if name == DEFAULT:
            raise ConfigError("the default stack cannot be deleted")
        with self.store.edit() as config:
            self.get_stack_entry(name, config)
            if config.active_stack == name:
                raise ConfigError(f"stack {name!r} is active; `pipeledger stack set default` first")
            del config.stacks[name]

    def set_active_stack(self, name: str) -> None:
        """Make ``name`` the active stack."""
        with self.store.edit() as config:
            self.get_stack_entry(name, config)
            config.active_stack = name

    def active_stack_name(self) -> str:
        """The active stack's name.

        Raises:
            ComponentNotFoundError: ``active_stack`` in the configuration names no registered
                stack (e.g. mistyped by hand): never silently another stack; the message lists
                the registered ones and how to choose one.
        """
        config = self.store.load()
        if config.stack(config.active_stack) is None:
            raise ComponentNotFoundError(
                f"the active stack {config.active_stack!r} (active_stack in {self.store.path}) is not "
                f"registered; registered stacks: {', '.join(config.stack_names())}; choose one with "
                "`pipeledger stack set NAME`"
            )
        return config.active_stack

    def describe_stack(self, name: str | None = None) -> dict[str, Any]:
        """The stack's components with their flavors and non-secret configuration."""
        config = self.store.load()
        name = name or self.active_stack_name()
        entry = self.get_stack_entry(name, config)
        return {
            "name": name,
            "active": name == config.active_stack,
            **{t.value: self.component_snapshot(t, entry.component(t), config) for t in ComponentType},
        }
