"""Where a step's code is, as OpenLineage's ``sourceCodeLocation`` job facet says it.

The facet (spec ``SourceCodeLocationJobFacet`` 1-1-0) has ``type`` (``git`` or ``file``),
``url`` (required, a URI: "the full http URL to locate the file"), ``repoUrl`` (the
repository, in any form git accepts: ``git@github.com:org/repo.git`` included), ``path``
(the file's path in the repository) and ``version`` (the commit). From what a run recorded
(its git root, remote and commit, the file of each step):

* ``path``: the step's file relative to the repository's root, with ``/`` separators;
* ``repoUrl``: the recorded remote (recorded redacted: no token or password);
* ``url``: the file's page at the commit when the remote is on a forge whose page layout is
  known (GitHub, GitLab, Bitbucket; from an https, ssh or scp-style remote), else the file's
  ``file://`` URI on the machine that ran it (the repository's root when the file is unknown);
  always percent-encoded, never with userinfo;
* outside a repository (or a step file outside it): ``type`` ``file`` and the file's URI.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import quote, urlsplit

from pipeledger.models import RunRecord, StepRunRecord

#: Forge hosts whose file page layout is known: host -> path between the repository and the commit.
FORGE_FILE_PAGES = {"github.com": "blob", "gitlab.com": "-/blob", "bitbucket.org": "src"}

_SCP_REMOTE = re.compile(r"^(?:[^@/:]+@)?(?P<host>[^@/:]+):(?P<path>[^/].*)$")
_WEB_SCHEMES = {"http", "https", "ssh", "git", "git+ssh", "ssh+git"}


def remote_repository(remote: str) -> tuple[str, str] | None:
    """``(host, "org/repo")`` of a git remote with a network host (``https://``, ``ssh://``,
    ``git://`` or scp-style ``user@host:org/repo.git``), lower-cased host, without the ``.git``
    suffix; None for a local path, a ``file://`` URL or anything unparsable."""
    if "://" in remote:
        try:
            parts = urlsplit(remote)
            host = parts.hostname
        except ValueError:
            return None
        if parts.scheme.lower() not in _WEB_SCHEMES or not host:
            return None
        path = parts.path
    else:
        match = _SCP_REMOTE.match(remote)
        if match is None or "\\" in remote:  # C:\path is a Windows path, not a host
            return None
        host, path = match.group("host"), match.group("path")
    path = path.strip("/").removesuffix(".git").strip("/")
    return (host.lower(), path) if path else None


def file_page_url(remote: str, commit: str, path: str) -> str | None:
    """The https page of ``path`` at ``commit`` on the forge holding ``remote``, or None when the
    forge's page layout is not known (see :data:`FORGE_FILE_PAGES`)."""
    found = remote_repository(remote)
    if found is None or found[0] not in FORGE_FILE_PAGES:
        return None
    host, repository = found
    try:
        parts = [quote(repository, safe="/"), FORGE_FILE_PAGES[host], quote(commit, safe=""), quote(path)]
    except UnicodeEncodeError:  # a name that is not text (undecodable bytes kept as surrogates)
        return None
    return f"https://{host}/{'/'.join(parts)}"


def file_uri(path: str) -> str | None:
    """``path`` (absolute, as recorded on the machine that ran) as a percent-encoded ``file://``
    URI (undecodable bytes of a file name kept as surrogates become their ``%XX``); None for a
    relative path or one that cannot be written as a URI."""
    for flavor in (PurePosixPath, PureWindowsPath):
        pure = flavor(path)
        if pure.is_absolute():
            try:
                return pure.as_uri()
            except (UnicodeEncodeError, ValueError):
                return None
    return None


def path_in_repository(file: str, root: str) -> str | None:
    """``file`` relative to the repository ``root``, ``/``-separated; None outside it."""
    for flavor in (PurePosixPath, PureWindowsPath):
        try:
            relative = flavor(file).relative_to(flavor(root))
        except ValueError:
            continue
        if relative.parts and flavor(root).is_absolute():
            return relative.as_posix()
    return None


def step_source_file(run: RunRecord, step: StepRunRecord) -> str | None:
    """The file defining the step's function: recorded with the step run (its config's
    ``source_file``); for step runs recorded before that, the pipeline's file when the step's
    function is in the pipeline's module; else None."""
    recorded = step.config.get("source_file")
    if isinstance(recorded, str) and recorded:
        return recorded
    pipeline = run.config.get("pipeline") or {}
    pipeline_file, pipeline_entrypoint = pipeline.get("source_file"), pipeline.get("entrypoint")
    if not (isinstance(pipeline_file, str) and isinstance(pipeline_entrypoint, str) and step.entrypoint):
        return None
    same_module = pipeline_entrypoint.rpartition(".")[0] == step.entrypoint.rpartition(".")[0]
    return pipeline_file if same_module else None


def source_code_location(run: RunRecord, step: StepRunRecord) -> dict[str, Any] | None:
    """The facet's fields (without ``_producer``/``_schemaURL``) for ``step`` of ``run``, or None
    when nothing locates its code (see the module docstring)."""
    git = run.environment.get("git") or {}
    root = git.get("root") if isinstance(git.get("root"), str) else None
    remote = git.get("remote") if isinstance(git.get("remote"), str) else None
    source = step_source_file(run, step)
    in_repository = path_in_repository(source, root) if source and root else None
    if git and (in_repository is not None or source is None):
        url = None
        if remote and run.git_sha and in_repository is not None:
            url = file_page_url(remote, run.git_sha, in_repository)
        url = url or file_uri(source or root or "")
        if url is None:
            return None
        facet: dict[str, Any] = {"type": "git", "url": url}
        if remote:
            facet["repoUrl"] = remote
        if in_repository is not None:
            facet["path"] = in_repository
        if run.git_sha:
            facet["version"] = run.git_sha
        return facet
    url = file_uri(source) if source else None
    if url is None:
        return None
    return {"type": "file", "url": url}
