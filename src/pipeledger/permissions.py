"""File modes of what pipeledger writes locally: private to the user by default, whatever the umask.

Two settings, chosen per component (``permissions`` in the ``sqlite`` and ``local``
artifact store flavors):

* ``private`` (the default): directories ``0700``, files ``0600``;
* ``group``: directories ``2770`` (setgid, so files created inside keep the
  directory's group) and files ``0660``, for a store shared by a Unix group.

Modes are set with ``chmod`` after creation, so the umask cannot loosen them. The
pipeledger home (``$PIPELEDGER_HOME``: the configuration and the default stores) is
always private. Paths that already exist are only *restricted* (:func:`restrict`:
the bits the setting does not allow are removed, none is added, so a read-only home
stays read-only), only where a docstring says so, and only when they belong to the
current user.
"""

from __future__ import annotations

import os
import stat
from typing import Literal

Permissions = Literal["private", "group"]

PRIVATE: Permissions = "private"

_MODES: dict[str, tuple[int, int]] = {
    "private": (0o700, 0o600),
    "group": (0o2770, 0o660),
}


def dir_mode(permissions: Permissions) -> int:
    """The mode of directories for ``permissions``."""
    return _MODES[permissions][0]


def file_mode(permissions: Permissions) -> int:
    """The mode of files for ``permissions``."""
    return _MODES[permissions][1]


def _owned(info: os.stat_result) -> bool:
    return not hasattr(os, "getuid") or info.st_uid == os.getuid()


def set_mode(path: str | os.PathLike[str], mode: int) -> None:
    """``chmod path mode`` if the current user owns ``path`` and its mode differs (no error if
    it vanished or is someone else's: a shared store's files may belong to colleagues)."""
    try:
        info = os.stat(path)
        if _owned(info) and stat.S_IMODE(info.st_mode) != mode:
            os.chmod(path, mode)
    except (FileNotFoundError, PermissionError):
        pass


def restrict(path: str | os.PathLike[str], permissions: Permissions) -> None:
    """Remove from an existing ``path`` (owned by the current user) the permission bits that
    ``permissions`` does not allow: group and other bits for ``private``, other bits for
    ``group``. Nothing is added."""
    allowed = 0o7700 if permissions == "private" else 0o7770
    try:
        info = os.stat(path)
        mode = stat.S_IMODE(info.st_mode)
        if _owned(info) and mode & ~allowed:
            os.chmod(path, mode & allowed)
    except (FileNotFoundError, PermissionError):
        pass


def make_dirs(path: str | os.PathLike[str], permissions: Permissions) -> None:
    """Create ``path`` and its missing parents, each created one with the directory mode of
    ``permissions``; existing directories are left as they are."""
    target = os.fspath(path)
    mode = dir_mode(permissions)
    try:  # the common case first: only the last directory is missing (one system call)
        os.mkdir(target, mode)
    except FileExistsError:  # there already (or created by another process meanwhile, which sets its mode)
        return
    except FileNotFoundError:
        parent = os.path.dirname(target.rstrip(os.sep)) or "."
        if parent == target:
            raise
        make_dirs(parent, permissions)
        try:
            os.mkdir(target, mode)
        except FileExistsError:
            return
    set_mode(target, mode)


def ensure_dir(path: str | os.PathLike[str], permissions: Permissions) -> None:
    """Create ``path`` (see :func:`make_dirs`), or :func:`restrict` it if it existed: for roots
    such as the home and a store's root."""
    make_dirs(path, permissions)
    restrict(path, permissions)


def secure_tree(path: str | os.PathLike[str], permissions: Permissions) -> None:
    """Give every directory and file under ``path`` (itself included) the modes of ``permissions``."""
    dmode, fmode = _MODES[permissions]
    set_mode(path, dmode if os.path.isdir(path) else fmode)
    for root, dirs, files in os.walk(path):
        for name in dirs:
            set_mode(os.path.join(root, name), dmode)
        for name in files:
            set_mode(os.path.join(root, name), fmode)


def create_file(path: str | os.PathLike[str], permissions: Permissions) -> None:
    """Create an empty file at ``path`` with the file mode of ``permissions`` unless it exists;
    an existing file is restricted (:func:`restrict`)."""
    mode = file_mode(permissions)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        restrict(path, permissions)
        return
    os.close(fd)
    set_mode(path, mode)
