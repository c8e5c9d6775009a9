"""A step's logs read in bounded pieces: a page is a byte window aligned on lines, a search scans a
bounded prefix, a tail reads the last bytes. Never the whole file (logs can be gigabytes).

Steps write their logs file when they end (``orchestrators/step_runner.py``), so a running step has
none yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeledger.artifacts.store import store_for

#: Bytes in one page of logs.
PAGE_BYTES = 64 * 1024
#: Bytes a search scans (from the start of the file), and the most matching lines it returns.
SEARCH_BYTES = 8 * 1024 * 1024
MAX_MATCHES = 500
#: Bytes of the live tail.
TAIL_BYTES = 4 * 1024


@dataclass(frozen=True)
class LogPage:
    """A window of a logs file: its text, where it starts and ends (bytes), and the file's size."""

    text: str
    start: int
    end: int
    size: int

    @property
    def previous(self) -> int | None:
        """The offset of the page before, or None on the first."""
        return max(self.start - PAGE_BYTES, 0) if self.start > 0 else None

    @property
    def next(self) -> int | None:
        """The offset of the page after, or None on the last."""
        return self.end if self.end < self.size else None

    @property
    def last(self) -> int:
        """The offset of the last page."""
        return max(self.size - PAGE_BYTES, 0)


@dataclass(frozen=True)
class LogMatch:
    """A line containing the searched text: its number (from 1) and its text."""

    number: int
    text: str


@dataclass(frozen=True)
class LogSearch:
    """The lines matching a search, and whether the search stopped before the end of the file."""

    matches: list[LogMatch]
    scanned: int
    size: int
    truncated: bool


def _size_and_read(uri: str, offset: int, length: int) -> tuple[int, bytes]:
    store = store_for(uri)
    path = store.path_of(uri)
    with store.failures(f"reading {uri}"):
        size = int(store.fs.size(path))
        offset = min(max(offset, 0), size)
        with store.fs.open(path, "rb") as f:
            f.seek(offset)
            return size, bytes(f.read(min(length, size - offset)))


def read_page(uri: str, offset: int = 0) -> LogPage:
    """The page of the logs at ``uri`` starting at byte ``offset``: up to :data:`PAGE_BYTES`, cut
    after the last complete line (unless one line is longer than a page), started after the first
    line break when ``offset`` falls inside a line."""
    size, data = _size_and_read(uri, offset - 1 if offset > 0 else 0, PAGE_BYTES + 1)
    start = min(max(offset, 0), size)
    if start > 0:
        if data[:1] != b"\n":  # inside a line: start at the next one
            cut = data.find(b"\n")
            if 0 <= cut < len(data) - 1:
                start += cut
                data = data[cut + 1 :]
            else:
                data = data[1:]
        else:
            data = data[1:]
    end = start + len(data)
    if end < size:
        cut = data.rfind(b"\n")
        if cut > 0:
            data = data[: cut + 1]
            end = start + len(data)
    return LogPage(data.decode("utf-8", errors="replace"), start, end, size)


def search(uri: str, text: str) -> LogSearch:
    """The lines of the logs at ``uri`` containing ``text`` (case-insensitive), among the first
    :data:`SEARCH_BYTES` bytes, at most :data:`MAX_MATCHES` lines."""
    size, data = _size_and_read(uri, 0, SEARCH_BYTES)
    wanted = text.casefold()
    matches = []
    truncated = size > len(data)
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if wanted in line.casefold():
            matches.append(LogMatch(number, line))
            if len(matches) >= MAX_MATCHES:
                truncated = True
                break
    return LogSearch(matches, len(data), size, truncated)


def tail(uri: str, length: int = TAIL_BYTES) -> str:
    """The last ``length`` bytes of the logs at ``uri``, from the first complete line."""
    store = store_for(uri)
    with store.failures(f"reading {uri}"):
        size = int(store.fs.size(store.path_of(uri)))
    _size, data = _size_and_read(uri, max(size - length, 0), length)
    if size > length and b"\n" in data:
        data = data[data.find(b"\n") + 1 :]
    return data.decode("utf-8", errors="replace")
