"""The configuration file: registered components, stacks, custom flavors, the active stack.

It lives at ``$PIPELEDGER_HOME/config.yaml``, is human-readable, and is only
changed through :meth:`ConfigStore.edit`, which holds a file lock across the
read-modify-write and replaces the file atomically (write a temporary file in the
same directory, fsync, rename), so concurrent processes never lose an update or
leave a torn file.

The ``default`` components (``local`` orchestrator, ``local`` artifact store,
``sqlite`` metadata store) and the ``default`` stack always exist; they are not
written to the file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeledger.exceptions import ConfigError
from pipeledger.stack.flavor import ComponentType
from pipeledger.stack.home import ensure_home

CONFIG_FILE = "config.yaml"
DEFAULT = "default"
DEFAULT_FLAVORS = {
    ComponentType.ORCHESTRATOR: "local",
    ComponentType.ARTIFACT_STORE: "local",
    ComponentType.METADATA_STORE: "sqlite",
}
_HEADER = """\
# pipeledger configuration: edit it with the `pipeledger` CLI.
# The `default` components and the `default` stack always exist and are not listed here.
# Secrets are stored only as references: ${env:VARIABLE} or ${file:/path/to/secret}.
"""


class ComponentEntry(BaseModel):
    """A registered component: its flavor and the configuration values given for it."""

    model_config = ConfigDict(extra="forbid")

    flavor: str
    config: dict[str, Any] = Field(default_factory=dict)


class StackEntry(BaseModel):
    """A registered stack: the name of one component of each type."""

    model_config = ConfigDict(extra="forbid")

    orchestrator: str
    artifact_store: str
    metadata_store: str

    def component(self, type_: ComponentType) -> str:
        """The stack's component of ``type_``."""
        return str(getattr(self, type_.value))


def _empty_components() -> dict[ComponentType, dict[str, ComponentEntry]]:
    return {t: {} for t in ComponentType}


class ConfigFile(BaseModel):
    """The whole configuration, as stored (without the built-in defaults)."""

    model_config = ConfigDict(extra="forbid")

    version: int = 1
    active_stack: str = DEFAULT
    components: dict[ComponentType, dict[str, ComponentEntry]] = Field(default_factory=_empty_components)
    stacks: dict[str, StackEntry] = Field(default_factory=dict)
    flavors: list[str] = Field(default_factory=list)

    def component(self, type_: ComponentType, name: str) -> ComponentEntry | None:
        """The component of ``type_`` called ``name`` (the built-in default included)."""
        if name == DEFAULT:
            return ComponentEntry(flavor=DEFAULT_FLAVORS[type_])
        return self.components.get(type_, {}).get(name)

    def component_names(self, type_: ComponentType) -> list[str]:
        """Names of the components of ``type_``: ``default`` first, then by name."""
        return [DEFAULT, *sorted(self.components.get(type_, {}))]

    def stack(self, name: str) -> StackEntry | None:
        """The stack called ``name`` (the built-in default included)."""
        if name == DEFAULT:
            return StackEntry(orchestrator=DEFAULT, artifact_store=DEFAULT, metadata_store=DEFAULT)
        return self.stacks.get(name)

    def stack_names(self) -> list[str]:
        """Names of the stacks: ``default`` first, then by name."""
        return [DEFAULT, *sorted(self.stacks)]

    def stacks_using(self, type_: ComponentType, name: str) -> list[str]:
        """Stacks whose component of ``type_`` is ``name``."""
        return [s for s in self.stack_names() if self.stack(s).component(type_) == name]  # type: ignore[union-attr]


class ConfigStore:
    """Reads and edits ``<home>/config.yaml`` safely across processes.

    Args:
        home: the pipeledger home directory.
        lock_timeout: seconds to wait for another process's edit before failing.
    """

    def __init__(self, home: Path, *, lock_timeout: float = 30.0) -> None:
        self.home = home
        self.path = home / CONFIG_FILE
        self._lock = FileLock(str(home / (CONFIG_FILE + ".lock")), timeout=lock_timeout, mode=0o600)

    def load(self) -> ConfigFile:
        """The current configuration (defaults only if the file does not exist).

        Raises:
            ConfigError: the file is not valid YAML or not a pipeledger configuration.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ConfigFile()
        except OSError as exc:
            raise ConfigError(f"cannot read {self.path}: {exc.strerror}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(
                f"{self.path} is not a valid pipeledger configuration (not UTF-8 text: {exc.reason} "
                f"at byte {exc.start}); fix it or move it away"
            ) from exc
        try:
            data = yaml.safe_load(text) or {}
            return ConfigFile.model_validate(data)
        except (yaml.YAMLError, ValidationError) as exc:
            if isinstance(exc, ValidationError):
                error = exc.errors()[0]
                where = ".".join(str(p) for p in error["loc"]) or "top level"
                first = f"{where}: {error['msg']}"
            else:
                first = str(exc).splitlines()[0]
            raise ConfigError(
                f"{self.path} is not a valid pipeledger configuration ({first}); fix it or move it away"
            ) from exc

    @contextmanager
    def edit(self) -> Iterator[ConfigFile]:
        """Lock, load, let the caller change the configuration, and write it atomically.

        Nothing is written if the ``with`` block raises.

        Raises:
            ConfigError: another process holds the lock for longer than the timeout,
                or the home directory is not writable.
        """
        try:
            ensure_home(self.home)
            with self._lock:
                config = self.load()
                yield config
                self._write(config)
        except Timeout as exc:
            raise ConfigError(
                f"another pipeledger process is editing {self.path} (lock {exc.lock_file}); try again"
            ) from exc
        except PermissionError as exc:
            raise ConfigError(f"cannot write the configuration in {self.home}: permission denied") from exc

    def _write(self, config: ConfigFile) -> None:
        data = config.model_dump(mode="json")
        data["components"] = {t: c for t, c in data["components"].items() if c}
        text = _HEADER + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".yaml", dir=self.home)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
