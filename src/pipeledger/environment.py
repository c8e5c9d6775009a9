"""What a run records about the code and environment it ran in."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from pipeledger.models import JSON
from pipeledger.redact import redact_url


@dataclass(frozen=True)
class GitInfo:
    """The git commit of the code, whether the tree had changes, and a hash of those changes."""

    sha: str | None
    dirty: bool | None
    diff_hash: str | None
    remote: str | None = None
    root: str | None = None


def _git(directory: Path, *args: str) -> str | None:
    try:
        result = subprocess.run(["git", *args], cwd=directory, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


@functools.lru_cache(maxsize=64)
def _repository(directory: Path) -> tuple[str | None, str | None]:
    """(root, remote URL) of the repository holding ``directory`` (stable for a process).

    The remote URL is redacted (:func:`pipeledger.redact.redact_url`): a token in it
    (``https://user:TOKEN@host/repo.git``) is never recorded.
    """
    root = (_git(directory, "rev-parse", "--show-toplevel") or "").strip() or None
    remote = (_git(directory, "config", "--get", "remote.origin.url") or "").strip() or None if root else None
    return root, redact_url(remote) if remote else None


def git_info(path: Path) -> GitInfo:
    """Git facts for the repository containing ``path`` (all None outside a repository).

    Two git processes run at the same time: ``git rev-parse HEAD`` (the commit) and
    ``git diff HEAD`` (changes to tracked files, staged or not: the tree is dirty when
    it prints anything, and its output is hashed). Untracked files do not count.
    """
    return start_git_info(path).result()


class PendingGitInfo:
    """The git processes of :func:`git_info`, started: :meth:`result` waits for them. Starting
    them first and collecting the result later lets a caller do its other work meanwhile
    (a run's setup), instead of waiting ~10 ms or more for two processes."""

    def __init__(self, path: Path) -> None:
        self.directory = path if path.is_dir() else path.parent
        self._processes: tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]] | None = None
        try:
            head = subprocess.Popen(
                ["git", "rev-parse", "--verify", "-q", "HEAD"],
                cwd=self.directory,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:  # no git on this machine
            return
        try:
            diff = subprocess.Popen(
                ["git", "diff", "HEAD", "--no-color", "--no-ext-diff"],
                cwd=self.directory,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            head.kill()
            head.communicate()
            return
        self._processes = (head, diff)

    def result(self) -> GitInfo:
        """Wait for the processes (10 s at most each) and read what they printed."""
        if self._processes is None:
            return GitInfo(None, None, None)
        head, diff = self._processes
        self._processes = None
        try:
            sha_out, _ = head.communicate(timeout=10)
            diff_out, _ = diff.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            _stop(head, diff)
            return GitInfo(None, None, None)
        sha = sha_out.decode().strip()
        if head.returncode != 0 or diff.returncode != 0 or len(sha) < 40:
            return GitInfo(None, None, None)  # not a repository, or no commit yet
        dirty = bool(diff_out)
        diff_hash = hashlib.sha256(diff_out).hexdigest() if dirty else None
        root, remote = _repository(self.directory)
        return GitInfo(sha, dirty, diff_hash, remote, root)

    def cancel(self) -> None:
        """Stop the processes (the caller no longer needs the result)."""
        if self._processes is not None:
            _stop(*self._processes)
            self._processes = None


def _stop(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        process.kill()
        process.communicate()


def start_git_info(path: Path) -> PendingGitInfo:
    """Start :func:`git_info`'s processes for ``path``; ``.result()`` gives what it returns."""
    return PendingGitInfo(path)


def package_versions(modules: Iterable[ModuleType | str]) -> dict[str, str]:
    """Installed distributions (name -> version) providing the given modules' top-level packages.

    Standard-library and unpackaged (project) modules are left out. Versions are read
    once and kept until ``sys.path`` or one of its directories that hold distributions
    changes (installing, upgrading or removing a distribution adds or removes its
    ``.dist-info`` directory there).
    """
    mapping = _packages_distributions()
    found: dict[str, str] = {}
    for module in modules:
        name = module if isinstance(module, str) else module.__name__
        top = name.partition(".")[0]
        for dist in mapping.get(top, ()):
            version = _VERSIONS.get(dist)
            if version is None:
                try:
                    version = _VERSIONS[dist] = importlib.metadata.version(dist)
                except importlib.metadata.PackageNotFoundError:
                    continue
            found[dist] = version
    return dict(sorted(found.items()))


_DISTRIBUTIONS: dict[str, list[str]] | None = None
_VERSIONS: dict[str, str] = {}
_STAMP: tuple[tuple[str, int], ...] = ()


def installed_distributions() -> dict[str, list[str]]:
    """Top-level import names -> the installed distributions providing them."""
    return _packages_distributions()


#: Names in a ``sys.path`` directory that make it hold installed distributions.
_DIST_SUFFIXES = (".dist-info", ".egg-info")


def _holds_distributions(entry: str) -> bool:
    try:
        with os.scandir(entry or ".") as found:
            return any(e.name.endswith(_DIST_SUFFIXES) for e in found)
    except OSError:  # not a directory (a zip file), or gone
        return False


def _sys_path_stamp(entries: tuple[str, ...]) -> tuple[tuple[str, int], ...]:
    stamp = []
    for entry in entries:
        try:
            stamp.append((entry, os.stat(entry or ".").st_mtime_ns))
        except OSError:
            continue
    return tuple(stamp)


_PATH: list[str] = []
_WATCHED: tuple[str, ...] = ()


def _packages_distributions() -> dict[str, list[str]]:
    """The mapping and the version cache, read again when ``sys.path`` changed or one of its
    directories holding distributions (``site-packages``) changed.

    Only those directories are watched: a directory of code or data on ``sys.path`` (the
    script's own, where a pipeline may write files on every run) changes often and never
    holds a ``.dist-info``; watching it would re-read every distribution's metadata
    (~0.1-0.5 s) on each run.
    """
    global _DISTRIBUTIONS, _STAMP, _PATH, _WATCHED
    if _DISTRIBUTIONS is None or sys.path != _PATH:
        _PATH = list(sys.path)
        _WATCHED = tuple(entry for entry in _PATH if _holds_distributions(entry))
        _DISTRIBUTIONS = None
    stamp = _sys_path_stamp(_WATCHED)
    if _DISTRIBUTIONS is None or stamp != _STAMP:
        _DISTRIBUTIONS = dict(importlib.metadata.packages_distributions())
        _VERSIONS.clear()
        _STAMP = stamp
    return _DISTRIBUTIONS


def modules_used_by(func: Any) -> set[str]:
    """Names of modules a function refers to through its globals (its module included)."""
    names = {func.__module__}
    code_names: set[str] = set()
    stack = [func.__code__]
    while stack:
        code = stack.pop()
        code_names.update(code.co_names)
        stack.extend(c for c in code.co_consts if hasattr(c, "co_names"))
    for name, value in func.__globals__.items():
        if name not in code_names:
            continue
        if isinstance(value, ModuleType):
            names.add(value.__name__)
        else:
            module = getattr(value, "__module__", None)
            if isinstance(module, str):
                names.add(module)
    return names


def environment(modules: Iterable[str]) -> dict[str, JSON]:
    """Python version, platform, and versions of the packages among ``modules``."""
    packages = package_versions([*modules, "pipeledger"])
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "executable": sys.executable,
        "packages": packages,
    }
