"""Previews (``ArtifactView.preview()``, ``pipeledger artifact show``): bounded summaries of an
artifact's value read without loading it, on the local and the s3 artifact store; on S3 the
bytes that cross the wire are counted (through :class:`tests.s3.FaultyHttpProxy`)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from pipeledger import pipeline, step
from pipeledger.cli.main import cli
from pipeledger.client import ArtifactView
from pipeledger.stack.registry import close_stacks
from tests.s3 import FaultyHttpProxy, MotoS3, register_s3_stack


@step
def make() -> tuple[
    Annotated[dict, "config"],
    Annotated[bytes, "blob"],
    Annotated[np.ndarray, "big"],
    Annotated[pd.DataFrame, "table"],
    Annotated[Any, "opaque"],
]:
    config = {"text": "é" * 2000, "n": 1}
    big = np.arange(4_000_000, dtype=np.float64).reshape(2_000, 2_000)  # 32 MB
    table = pd.DataFrame({"x": range(1000), "name": [f"n{i}" for i in range(1000)]})
    return config, b"plain text\nsecond line", big, table, complex_thing()


class Thing:
    def __init__(self) -> None:
        self.value = 3


def complex_thing() -> Thing:
    return Thing()


@pipeline(enable_cache=False)
def previews():
    make()


@pytest.fixture(params=["local", "s3"])
def proxy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultyHttpProxy | None]:
    """The active stack's artifact store: ``local``, or ``s3`` through a proxy that counts bytes."""
    if request.param == "local":
        yield None
        return
    server: MotoS3 = request.getfixturevalue("s3_server")
    counting = FaultyHttpProxy(server.port)
    register_s3_stack(monkeypatch, counting.endpoint, server.new_bucket())
    yield counting
    close_stacks()
    counting.stop()


def outputs() -> dict[str, ArtifactView]:
    return previews().steps["make"].outputs


@pytest.mark.filterwarnings("ignore:no materializer")
def test_previews_are_bounded_summaries_read_without_loading(proxy: FaultyHttpProxy | None) -> None:
    made = outputs()
    before = proxy.bytes_sent if proxy else 0

    config = made["config"].preview()
    assert config["preview"]["kind"] == "json" and config["preview"]["truncated"] is True
    assert config["preview"]["text"].startswith('{"text": "éé') and len(config["preview"]["text"].encode()) <= 1024
    assert config["files"] == {"data.json": made["config"].size}

    blob = made["blob"].preview()["preview"]
    assert blob["text"] == "plain text\nsecond line" and blob["truncated"] is False

    big = made["big"].preview()["preview"]
    assert big["kind"] == "array" and big["shape"] == [2000, 2000] and big["dtype"] == "float64"
    assert big["stats_of"] == (1 << 20) // 8 and big["min"] == 0.0 and big["max"] == (1 << 20) // 8 - 1
    assert big["first"] == [float(i) for i in range(10)]

    table = made["table"].preview()["preview"]
    assert table["kind"] == "table" and table["rows"] == 1000
    assert table["columns"]["x"] == "int64" and "string" in table["columns"]["name"]
    assert table["head"][:2] == [{"x": 0, "name": "n0"}, {"x": 1, "name": "n1"}] and len(table["head"]) == 5

    assert made["opaque"].preview()["preview"] == {"kind": "none"}  # a pickle is never loaded for a preview
    if proxy is not None:  # the 32 MB array cost about 1 MiB; all previews together little more
        assert proxy.bytes_sent - before < 3 * (1 << 20), proxy.bytes_sent - before


@pytest.mark.filterwarnings("ignore:no materializer")
def test_artifact_show_prints_the_record_and_the_preview(proxy: FaultyHttpProxy | None) -> None:
    run = previews()
    result = CliRunner().invoke(cli, ["artifact", "show", f"{run.name}/make/big"])
    assert result.exit_code == 0, result.output
    assert "shape (2000, 2000), dtype float64" in result.output
    assert "first 131072 elements: min 0.0, max 131071.0, mean 65535.5; [0.0, 1.0, 2.0," in result.output
    assert "size  32000128 B in 1 file" in result.output and f"produced by  {run.name}/make" in result.output
    result = CliRunner().invoke(cli, ["artifact", "show", f"{run.name}/make/table"])
    assert result.exit_code == 0 and "1000 rows x 2 columns; first 5 rows:" in result.output
    header, types, _, first, *_ = [line.split() for line in result.output.split("first 5 rows:\n")[1].splitlines()]
    assert (header, first) == (["x", "name"], ["0", "n0"]) and types[0] == "int64"
    result = CliRunner().invoke(cli, ["artifact", "show", "nope"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    result = CliRunner().invoke(cli, ["artifact", "show", f"{run.name}/make/opaque"])
    assert result.exit_code == 0 and "no preview for this materializer" in result.output


def test_a_wide_table_preview_shows_the_columns_that_fit_and_counts_the_others() -> None:
    from rich.console import Console

    from pipeledger.cli.artifact import _print_table

    columns = {f"feature number {i}": "double" for i in range(30)}
    head = [{name: i * 0.5 for name in columns} for i in range(3)]
    out = Console(width=80, record=True, color_system=None)
    _print_table(out, {"kind": "table", "rows": 569, "columns": columns, "head": head})
    lines = out.export_text().splitlines()
    assert lines[0] == "  569 rows x 30 columns; first 3 rows:"
    assert all(len(line) <= 80 for line in lines)
    shown = re.findall(r"feature number \d+", lines[1])
    assert lines[-1] == f"  ... and {30 - len(shown)} more columns (--json shows them all)"
    assert 1 <= len(shown) < 30 and shown == [f"feature number {i}" for i in range(len(shown))]


def test_a_table_preview_draws_markup_in_names_and_values_literally() -> None:
    from rich.console import Console

    from pipeledger.cli.artifact import _print_table

    out = Console(width=80, record=True, color_system=None)
    _print_table(out, {"kind": "table", "rows": 1, "columns": {"[bold]x": "object"}, "head": [{"[bold]x": "[red]y"}]})
    text = out.export_text()
    assert "[bold]x" in text and "[red]y" in text
