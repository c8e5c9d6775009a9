"""Packaging: the install prints no setuptools deprecation banner (PEP 639 license metadata)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def test_license_is_an_spdx_expression_with_a_setuptools_that_reads_it() -> None:
    """``license = { text = ... }`` makes setuptools >= 77 print a deprecation banner on every
    ``pip install``; an SPDX string needs setuptools >= 77 in the build environment."""
    config = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    assert config["project"]["license"] == "Apache-2.0"
    assert not any(c.startswith("License ::") for c in config["project"].get("classifiers", []))
    setuptools = [r for r in config["build-system"]["requires"] if re.match(r"setuptools\b", r)]
    assert len(setuptools) == 1
    match = re.search(r">=\s*(\d+)", setuptools[0])
    assert match is not None and int(match.group(1)) >= 77, setuptools[0]
