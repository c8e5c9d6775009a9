"""Custom flavors defined outside pipeledger: registered with ``flavor register`` and declared
by an installed distribution's entry point, put in a stack, run on, and read back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeledger import Client
from pipeledger.cli.main import cli
from pipeledger.exceptions import NotFoundError
from tests import pipelines as P

# Modelled on examples/custom_flavor/url_store.py, under another flavor name.
TESTSTORE_SOURCE = '''\
"""A metadata-store flavor living outside pipeledger: any SQLAlchemy URL."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from sqlalchemy.engine import make_url

from pipeledger.metadata_store.sql import Database, SqlMetadataStore
from pipeledger.stack.flavor import FlavorConfig, MetadataStoreFlavor


class UrlStoreConfig(FlavorConfig):
    url: str = Field(description="SQLAlchemy URL (no password in it).")
    password: SecretStr | None = Field(None, description="Password, as a reference.")


class UrlStoreFlavor(MetadataStoreFlavor):
    name = "teststore"
    description = "Test store defined outside pipeledger."
    integration = "tests"
    config_class = UrlStoreConfig

    def create(self, component_name: str, config: UrlStoreConfig, home: Path) -> SqlMetadataStore:
        url = make_url(config.url)
        if config.password is not None:
            url = url.set(password=config.password.get_secret_value())
        database = Database(url, display_name=url.render_as_string(hide_password=True))
        return SqlMetadataStore(database, flavor=self.name)
'''

PIPELINE_SCRIPT = """\
import json

from pipeledger import pipeline, step


@step
def hello() -> str:
    return "recorded through an entry-point flavor"


@pipeline
def greeting():
    hello()


run = greeting()
print(json.dumps({"name": run.name, "status": str(run.status), "stack": run.stack}))
"""


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = invoke(*args)
    assert code == 0, f"`pipeledger {' '.join(args)}` failed: {err}"
    return out


@pytest.fixture
def forget_modules() -> Iterator[list[str]]:
    """Names of modules a test imports from its tmp_path; removed from sys.modules afterwards."""
    names: list[str] = []
    yield names
    for name in names:
        sys.modules.pop(name, None)


# ------------------------------------------------------------------- flavor register


@pytest.fixture
def plugin_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forget_modules: list[str]) -> str:
    """A module outside the package, on sys.path, defining the ``teststore`` flavor."""
    directory = tmp_path / "plugins"
    directory.mkdir()
    (directory / "teststore_registered.py").write_text(TESTSTORE_SOURCE)
    monkeypatch.syspath_prepend(str(directory))
    forget_modules.append("teststore_registered")
    return "teststore_registered"


def test_flavor_registered_by_import_path_runs_a_pipeline(plugin_module: str, home: Path, tmp_path: Path) -> None:
    assert "teststore" not in ok("metadata-store", "flavor", "list")
    source = f"{plugin_module}:UrlStoreFlavor"
    out = ok("metadata-store", "flavor", "register", source)
    assert f"Registered metadata store flavor teststore from {source}" in out

    row = next(line for line in ok("metadata-store", "flavor", "list").splitlines() if "teststore" in line)
    assert "registered" in row and "Test store defined outside pipeledger." in row
    out = ok("metadata-store", "flavor", "describe", "teststore")
    assert "url" in out and "password" in out and "secret reference" in out

    database = tmp_path / "team.db"
    ok("metadata-store", "register", "team", "--flavor=teststore", f"--url=sqlite:///{database}")
    ok("stack", "register", "team", "-m", "team", "--set")

    run = P.training(lr=0.25)
    assert run.stack["name"] == "team"
    assert run.stack["metadata_store"] == {
        "name": "team",
        "flavor": "teststore",
        "config": {"url": f"sqlite:///{database}"},
    }
    assert database.exists()
    assert not (home / "metadata.db").exists()  # nothing went to the default store

    read = Client(stack="team").get_run(run.name)
    assert read.status == "completed"
    assert read.parameters["lr"] == 0.25
    assert read.steps["train"].outputs["model"].read() == {"w": 0.25, "n": 4}
    assert Client().get_run(run.name).id == run.id  # the active stack
    with pytest.raises(NotFoundError):
        Client(stack="default").get_run(run.name)

    out = ok("run", "show", run.name)
    assert "completed" in out


def test_registered_flavor_that_cannot_be_imported_any_more(
    plugin_module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok("metadata-store", "flavor", "register", f"{plugin_module}:UrlStoreFlavor")
    ok("metadata-store", "register", "team", "--flavor=teststore", f"--url=sqlite:///{tmp_path / 't.db'}")
    ok("stack", "register", "team", "-m", "team")

    # The module leaves the path (another virtualenv, a renamed package...).
    monkeypatch.setattr(sys, "path", [p for p in sys.path if not p.endswith("plugins")])
    sys.modules.pop(plugin_module, None)

    assert "teststore" not in ok("metadata-store", "flavor", "list")  # the list still works
    ok("stack", "list")
    for args in (("metadata-store", "describe", "team"), ("stack", "describe", "team")):
        code, out, err = invoke(*args)
        assert code == 1 and "Traceback" not in out + err
        assert len(err.strip().splitlines()) == 1
        assert "unknown metadata store flavor 'teststore'" in err


# ------------------------------------------------------------------------ entry point


def make_distribution(root: Path) -> Path:
    """A tiny installed distribution: a package and its dist-info declaring two flavors
    (one of them broken). Returns the directory to put on the path."""
    site = root / "site"
    package = site / "teststore_ep"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(TESTSTORE_SOURCE)
    info = site / "pipeledger_teststore-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pipeledger-teststore\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[pipeledger.flavors]\nteststore = teststore_ep:UrlStoreFlavor\nbroken = teststore_ep:NoSuchFlavor\n"
    )
    return site


def test_flavor_from_an_entry_point_runs_a_pipeline(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch, forget_modules: list[str]
) -> None:
    site = make_distribution(tmp_path)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PIPELEDGER_HOME": str(home),
        "PIPELEDGER_QUIET": "1",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(args, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)

    def pipeledger(*args: str) -> str:
        result = run(sys.executable, "-c", "from pipeledger.cli.main import main; main()", *args)
        assert result.returncode == 0, result.stderr
        return result.stdout

    # Discovered without `flavor register`; the broken entry point is left out.
    out = pipeledger("metadata-store", "flavor", "list")
    row = next(line for line in out.splitlines() if "teststore" in line)
    assert "package pipeledger-teststore" in row
    assert "broken" not in out
    assert "url" in pipeledger("metadata-store", "flavor", "describe", "teststore")
    # An unknown flavor's error names the plug-in that could not be loaded, in a sentence.
    cli = (sys.executable, "-c", "from pipeledger.cli.main import main; main()")
    unknown = run(*cli, "metadata-store", "flavor", "describe", "nosuch")
    assert unknown.returncode == 1
    assert "; not loaded: cannot import flavor 'teststore_ep:NoSuchFlavor': AttributeError" in unknown.stderr

    database = tmp_path / "team.db"
    pipeledger("metadata-store", "register", "team", "--flavor=teststore", f"--url=sqlite:///{database}")
    pipeledger("stack", "register", "team", "-m", "team", "--set")
    assert "teststore" in pipeledger("stack", "describe")

    # A user flavor may not take the name the package provides.
    (tmp_path / "site" / "clash.py").write_text(
        TESTSTORE_SOURCE.replace("UrlStoreFlavor", "ClashFlavor").replace("UrlStoreConfig", "ClashConfig")
    )
    clash = run(
        sys.executable,
        "-c",
        "from pipeledger.cli.main import main; main()",
        "metadata-store",
        "flavor",
        "register",
        "clash:ClashFlavor",
    )
    assert clash.returncode == 1
    assert "a metadata store flavor named 'teststore' already exists (package pipeledger-teststore" in (clash.stderr)

    script = tmp_path / "greeting.py"
    script.write_text(PIPELINE_SCRIPT)
    result = run(sys.executable, str(script))
    assert result.returncode == 0, result.stderr
    recorded = json.loads(result.stdout.strip().splitlines()[-1])
    assert recorded["status"] == "completed"
    assert recorded["stack"]["metadata_store"]["flavor"] == "teststore"
    assert database.exists() and not (home / "metadata.db").exists()

    assert recorded["name"] in pipeledger("run", "list")

    # Read back in this process, once the distribution is on its path too.
    monkeypatch.syspath_prepend(str(site))
    forget_modules.append("teststore_ep")
    read = Client(stack="team").get_run(recorded["name"])
    assert read.status == "completed"
    assert read.stack == recorded["stack"]
    assert read.steps["hello"].output.read() == "recorded through an entry-point flavor"
