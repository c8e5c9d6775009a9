"""The code a step depends on: its own source and, transitively, the user code it uses.

:func:`code_fingerprint` follows a step function's references (globals,
attributes of user modules, closure cells, methods of user classes) into the
**user's own modules** and hashes each function and class found. Modules of the
standard library and of installed packages (and pipeledger itself) are not
followed: a dependency's version is an environment fact, not the step's code.
Module-level constants a function reads (numbers, strings, tuples of them) are
part of its fingerprint too.

Sources are hashed after parsing (``ast.dump``), so formatting and comments do
not change a fingerprint; anything that changes the program does.

Functions are named ``module.qualname`` by :func:`module_name`, which does not depend
on how the module was loaded: a script run as ``python train.py`` (``__main__``) is
named ``train``, as it is when imported, or loaded from its file by ``run rerun``.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import sys
import sysconfig
import textwrap
import types
import weakref
from pathlib import Path
from typing import Any

_NOT_USER_PREFIXES: tuple[str, ...] | None = None
_SIMPLE = (int, float, str, bytes, bool, type(None))


def _library_prefixes() -> tuple[str, ...]:
    global _NOT_USER_PREFIXES
    if _NOT_USER_PREFIXES is None:
        paths = sysconfig.get_paths()
        roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
        roots |= {p for p in sys.path if "site-packages" in p or "dist-packages" in p}
        roots.add(str(Path(__file__).resolve().parent.parent))  # pipeledger itself
        _NOT_USER_PREFIXES = tuple(str(Path(r).resolve()) for r in roots if r)
    return _NOT_USER_PREFIXES


@functools.lru_cache(maxsize=1024)
def _is_editable(distribution: str) -> bool:
    import importlib.metadata  # on first use: ~20 ms to import (email, zipfile, csv)

    try:
        text = importlib.metadata.distribution(distribution).read_text("direct_url.json") or "{}"
        return bool(json.loads(text).get("dir_info", {}).get("editable"))
    except (importlib.metadata.PackageNotFoundError, ValueError, AttributeError):
        return False


def is_user_module(module: types.ModuleType | None) -> bool:
    """Whether ``module`` is the user's own code.

    Not user code: modules without a file (built-ins), files under the standard
    library or site-packages, and modules of installed distributions (unless the
    distribution is installed in editable mode, as a project under development is).
    """
    if module is None:
        return False
    file = getattr(module, "__file__", None)
    if not file:
        return module.__name__ == "__main__"
    resolved = str(Path(file).resolve())
    if resolved.startswith(_library_prefixes()):
        return False
    from pipeledger.environment import installed_distributions

    distributions = installed_distributions().get(module.__name__.partition(".")[0], [])
    return not distributions or any(_is_editable(d) for d in distributions)


#: Set on a module that pipeledger loaded from a file under a private name (``run rerun`` of a
#: script): the name the module is recorded under.
RECORDED_NAME_ATTRIBUTE = "__pipeledger_module__"


@functools.lru_cache(maxsize=256)
def file_module_name(path: str | Path) -> str:
    """The dotted name a Python file is imported under from the directory above its packages:
    its stem, prefixed by each enclosing directory that holds an ``__init__.py``."""
    file = Path(path).resolve()
    parts = [file.stem]
    folder = file.parent
    while (folder / "__init__.py").is_file() and folder.parent != folder:
        parts.append(folder.name)
        folder = folder.parent
    return ".".join(reversed(parts))


def module_name(name: str) -> str:
    """The name the module loaded as ``name`` has in fingerprints and entrypoints, whatever
    way it was loaded.

    ``__main__`` (a script) is named as it would be imported: by ``python -m pkg.mod`` its
    module name, by ``python path/mod.py`` its :func:`file_module_name`; ``__main__`` without
    a file (a REPL) stays ``__main__``. A module ``run rerun`` loaded from a recorded file
    keeps its recorded name. Any other module is named by its ``__name__``.
    """
    module = sys.modules.get(name)
    if module is None:
        return name
    recorded = getattr(module, RECORDED_NAME_ATTRIBUTE, None)
    if isinstance(recorded, str):
        return recorded
    if name != "__main__":
        return name
    spec = getattr(module, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)
    file = getattr(module, "__file__", None)
    return file_module_name(file) if file else name


_FUNCTION_HASHES: weakref.WeakKeyDictionary[types.FunctionType, dict[bool, str]] = weakref.WeakKeyDictionary()


def normalized_source_hash(obj: Any, *, decorators: bool = True) -> str:
    """sha256 of the object's parsed source (formatting and comments ignored).

    ``decorators=False`` leaves out the decorators of the definition itself (used for
    steps: their ``@step(...)`` options are not code, and ``cache_version`` is a key
    component of its own). Falls back to the bytecode when the source is unavailable
    (e.g. in a REPL). A function's hash is memoized on the function object: what runs
    cannot change without a new function, even if its file is edited meanwhile. (Not on
    its code object: code objects compare by value, and equal ones can belong to
    functions whose default argument values or decorators differ.)
    """
    if isinstance(obj, types.FunctionType):
        memo = _FUNCTION_HASHES.setdefault(obj, {})
        found = memo.get(decorators)
        if found is None:
            found = memo[decorators] = _source_hash(obj, decorators)
        return found
    return _source_hash(obj, decorators)


def _source_hash(obj: Any, decorators: bool = True) -> str:
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(obj)))
        if not decorators:
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    node.decorator_list = []
        text = ast.dump(tree, annotate_fields=False, include_attributes=False)
    except (OSError, TypeError, SyntaxError, IndentationError):
        code = getattr(obj, "__code__", None)
        text = repr(code.co_code) + repr(code.co_consts) if code is not None else repr(obj)
    return hashlib.sha256(text.encode()).hexdigest()


def _code_objects(func: types.FunctionType) -> list[types.CodeType]:
    found = []
    stack = [func.__code__]
    while stack:
        code = stack.pop()
        found.append(code)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return found


def _names_used(func: types.FunctionType) -> set[str]:
    names: set[str] = set()
    for code in _code_objects(func):
        names.update(code.co_names)
    return names


def _qualified(obj: Any) -> str:
    return f"{module_name(obj.__module__)}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _simple_constant(value: Any) -> bool:
    if isinstance(value, _SIMPLE):
        return True
    if isinstance(value, (tuple, frozenset)):
        return all(_simple_constant(v) for v in value)
    return False


def code_fingerprint(func: types.FunctionType) -> dict[str, str]:
    """``{qualified name: hash}`` of ``func`` and every user function, class and module constant
    it reaches. The step itself is under its own qualified name."""
    result: dict[str, str] = {}
    seen: set[int] = set()
    queue: list[Any] = [func]
    steps = {id(func)}  # hashed without their @step(...) decorator

    def consider(value: Any, origin_module: str | None = None, name: str | None = None) -> None:
        from pipeledger.steps.step import Step

        if isinstance(value, Step):  # a step used as a plain function inside another step
            value = value.func
            steps.add(id(value))
        if isinstance(value, (types.FunctionType, type)):
            if id(value) not in seen and is_user_module(sys.modules.get(value.__module__)):
                queue.append(value)
        elif name is not None and origin_module is not None and _simple_constant(value):
            key = f"{module_name(origin_module)}.{name}"
            result[key] = hashlib.sha256(repr(value).encode()).hexdigest()

    while queue:
        obj = queue.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        result[_qualified(obj)] = normalized_source_hash(obj, decorators=id(obj) not in steps)
        functions: list[types.FunctionType] = []
        if isinstance(obj, types.FunctionType):
            functions.append(obj)
        else:  # a class: its methods, and user base classes
            for base in obj.__mro__[1:]:
                consider(base)
            for member in vars(obj).values():
                target = member.__func__ if isinstance(member, (staticmethod, classmethod)) else member
                if isinstance(target, property):
                    functions.extend(f for f in (target.fget, target.fset) if isinstance(f, types.FunctionType))
                elif isinstance(target, types.FunctionType):
                    functions.append(target)
        for function in functions:
            names = _names_used(function)
            origin = function.__module__
            for name in names:
                if name not in function.__globals__:
                    continue
                value = function.__globals__[name]
                if isinstance(value, types.ModuleType):
                    if is_user_module(value):  # attribute access: helpers.normalize
                        for attr in names:
                            if attr in vars(value):
                                consider(vars(value)[attr], value.__name__, attr)
                    continue
                consider(value, origin, name)
            for cell in function.__closure__ or ():
                try:
                    consider(cell.cell_contents)
                except ValueError:  # empty cell
                    continue
    return dict(sorted(result.items()))
