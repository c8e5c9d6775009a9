"""The component and stack CLI: every verb, and every refusal as one clear line on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from pipeledger.cli.main import cli
from pipeledger.stack.config import ConfigStore

NOUNS = ("metadata-store", "artifact-store", "orchestrator")
BUILTIN = {"metadata-store": "sqlite", "artifact-store": "local", "orchestrator": "local"}
HUMAN = {
    "metadata-store": "metadata store",
    "artifact-store": "artifact store",
    "orchestrator": "orchestrator",
}
STACK_OPTION = {"metadata-store": "-m", "artifact-store": "-a", "orchestrator": "-o"}


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def ok(*args: str) -> str:
    code, out, err = invoke(*args)
    assert code == 0, f"`pipeledger {' '.join(args)}` failed: {err}"
    return out


def refused(*args: str) -> str:
    """Run a command that must fail: exit 1, one line on stderr, no traceback. Returns the line."""
    code, out, err = invoke(*args)
    assert code == 1, f"`pipeledger {' '.join(args)}` exited {code}: {out}{err}"
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("Error: ")
    return lines[0]


def stored_config(home: Path) -> dict:
    return yaml.safe_load((home / "config.yaml").read_text())


# ----------------------------------------------------------------- component verbs


def test_metadata_store_verbs(home: Path, tmp_path: Path) -> None:
    out = ok("metadata-store", "register", "team", "--flavor=sqlite", "--busy-timeout=5")
    assert "Registered metadata store team (flavor sqlite)" in out

    out = ok("metadata-store", "list")
    assert "default" in out and "team" in out and "sqlite" in out
    default_line = next(line for line in out.splitlines() if "default" in line)
    assert "yes" in default_line  # the default store is in the active (default) stack

    out = ok("metadata-store", "describe", "team")
    assert "metadata store team" in out
    assert str(home / "metadata-team.db") in out  # the home-dependent default, fixed at registration
    assert "5.0" in out and "stacks" in out

    ok("metadata-store", "update", "team", f"--path={tmp_path / 'elsewhere.db'}", "--busy-timeout", "7")
    out = ok("metadata-store", "describe", "team")
    assert str(tmp_path / "elsewhere.db") in out and "7.0" in out

    ok("stack", "register", "s", "-m", "team")
    out = ok("metadata-store", "describe", "team")
    assert next(line for line in out.splitlines() if line.startswith("stacks")).split()[-1] == "s"

    ok("stack", "delete", "s")
    assert "Deleted metadata store team" in ok("metadata-store", "delete", "team")
    assert "team" not in ok("metadata-store", "list")
    assert stored_config(home)["components"] == {}


def test_artifact_store_verbs(home: Path, tmp_path: Path) -> None:
    ok("artifact-store", "register", "bucket", "-f", "local")
    assert str(home / "artifacts-bucket") in ok("artifact-store", "describe", "bucket")
    ok("artifact-store", "update", "bucket", f"--path={tmp_path / 'bucket'}")
    assert str(tmp_path / "bucket") in ok("artifact-store", "describe", "bucket")
    assert "bucket" in ok("artifact-store", "list")
    ok("artifact-store", "delete", "bucket")
    assert "bucket" not in ok("artifact-store", "list")


def test_orchestrator_verbs() -> None:
    ok("orchestrator", "register", "runner", "--flavor=local")
    out = ok("orchestrator", "describe", "runner")
    assert "orchestrator runner" in out and "local" in out
    assert "runner" in ok("orchestrator", "list")
    ok("orchestrator", "update", "runner", "--max-parallelism=3")
    assert "max_parallelism  3" in ok("orchestrator", "describe", "runner")
    assert "field 'workers': Input should be 'processes' or 'threads'" in refused(
        "orchestrator", "update", "runner", "--workers=2"
    )
    assert "field 'max_parallelism'" in refused("orchestrator", "update", "runner", "--max-parallelism=0")
    ok("orchestrator", "delete", "runner")
    assert "runner" not in ok("orchestrator", "list")


def test_list_marks_the_components_of_the_active_stack() -> None:
    ok("artifact-store", "register", "bucket", "--flavor=local")
    ok("stack", "register", "s", "-a", "bucket", "--set")
    out = ok("artifact-store", "list")
    rows = {line.split()[1]: line for line in out.splitlines() if "local" in line}
    assert "yes" in rows["bucket"] and "yes" not in rows["default"]


def test_the_config_file_holds_what_was_registered(home: Path) -> None:
    ok("metadata-store", "register", "team", "--flavor=sqlite")
    ok("artifact-store", "register", "bucket", "--flavor=local")
    ok("stack", "register", "s", "-a", "bucket", "-m", "team", "--set")
    text = (home / "config.yaml").read_text()
    assert text.startswith("# pipeledger configuration")
    data = yaml.safe_load(text)
    assert data["active_stack"] == "s"
    assert data["stacks"] == {"s": {"orchestrator": "default", "artifact_store": "bucket", "metadata_store": "team"}}
    assert data["components"]["metadata_store"]["team"] == {
        "flavor": "sqlite",
        "config": {"path": str(home / "metadata-team.db")},
    }
    assert "default" not in data["components"].get("orchestrator", {})


@pytest.mark.parametrize("noun", NOUNS)
def test_component_refusals(noun: str) -> None:
    flavor = BUILTIN[noun]
    human = HUMAN[noun]
    ok(noun, "register", "mine", f"--flavor={flavor}")

    message = refused(noun, "register", "mine", f"--flavor={flavor}")
    a_human = ("an " if human[0] in "aeiou" else "a ") + human  # "an artifact store", "a metadata store"
    assert f"{a_human} named 'mine' is already registered" in message
    assert f"pipeledger {noun} update mine" in message
    assert f"{a_human} named 'default' is already registered" in refused(
        noun, "register", "default", f"--flavor={flavor}"
    )

    message = refused(noun, "register", "other", "--flavor=nope")
    assert f"unknown {human} flavor 'nope'; known flavors: " in message and flavor in message
    assert f"pipeledger {noun} flavor list" in message

    message = refused(noun, "register", "other", f"--flavor={flavor}", "--no-such-field=1")
    assert "unknown field 'no_such_field'; valid fields: " in message

    assert f"invalid {human} name 'bad name!'" in refused(noun, "register", "bad name!", f"--flavor={flavor}")
    assert "unexpected argument 'stray'" in refused(noun, "register", "other", f"--flavor={flavor}", "stray")

    assert f"the default {human} cannot be changed" in refused(noun, "update", "default", "--path=/x")
    assert f"the default {human} cannot be deleted" in refused(noun, "delete", "default")

    for verb in ("describe", "delete"):
        assert f"no {human} named 'ghost'; registered: default, mine" in refused(noun, verb, "ghost")
    assert f"no {human} named 'ghost'" in refused(noun, "update", "ghost", "--path=/x")
    assert "nothing to update" in refused(noun, "update", "mine")

    ok("stack", "register", "uses-it", STACK_OPTION[noun], "mine")
    ok("stack", "register", "also", STACK_OPTION[noun], "mine")
    message = refused(noun, "delete", "mine")
    assert f"{human} 'mine' is used by stacks also, uses-it; delete or change those stacks first" in message
    assert "delete or change those stacks first" in message
    assert "mine" in ok(noun, "list")


@pytest.mark.parametrize(
    ("noun", "args", "fragments"),
    [
        (
            "metadata-store",
            ("--busy-timeout=soon",),
            (
                "field 'busy_timeout'",
                "expected float",
                "got 'soon'",
                "valid fields: path (str), busy_timeout (float)",
            ),
        ),
        (
            "metadata-store",
            ("--busy-timeout=-1",),
            ("field 'busy_timeout'", "greater than 0", "expected float"),
        ),
        ("metadata-store", ("--busy-timeout",), ("field 'busy_timeout'", "expected float", "got 'true'")),
        ("artifact-store", ("--bucket=s3://x",), ("unknown field 'bucket'", "valid fields: path (str)")),
        ("orchestrator", ("--path=/x",), ("unknown field 'path'", "valid fields: max_parallelism (int)")),
        ("metadata-store", ("--path=/a", "--path=/b"), ("option --path is given twice",)),
    ],
)
def test_invalid_values_name_the_field(noun: str, args: tuple[str, ...], fragments: tuple[str, ...]) -> None:
    for verb_args in (("register", "x", f"--flavor={BUILTIN[noun]}"), ("update", "x")):
        if verb_args[0] == "update":
            ok(noun, "register", "x", f"--flavor={BUILTIN[noun]}")
        message = refused(noun, *verb_args, *args)
        for fragment in fragments:
            assert fragment in message
    ok(noun, "describe", "x")  # a refused update changes nothing


def test_a_refused_command_leaves_the_config_file_alone(home: Path) -> None:
    ok("metadata-store", "register", "team", "--flavor=sqlite")
    before = (home / "config.yaml").read_bytes()
    refused("metadata-store", "update", "team", "--busy-timeout=never")
    refused("metadata-store", "register", "team", "--flavor=sqlite")
    refused("stack", "register", "s", "-m", "ghost")
    assert (home / "config.yaml").read_bytes() == before


# -------------------------------------------------------------------------- flavors


@pytest.mark.parametrize("noun", NOUNS)
def test_flavor_list_and_describe(noun: str) -> None:
    flavor = BUILTIN[noun]
    out = ok(noun, "flavor", "list")
    row = next(line for line in out.splitlines() if f" {flavor} " in line)
    assert "built-in" in row
    out = ok(noun, "flavor", "describe", flavor)
    assert out.startswith(f"{flavor}: ")
    message = refused(noun, "flavor", "describe", "nope")
    assert f"unknown {HUMAN[noun]} flavor 'nope'; known flavors: " in message and flavor in message


def test_flavor_describe_shows_fields_types_and_defaults() -> None:
    out = ok("metadata-store", "flavor", "describe", "sqlite")
    path_row = next(line for line in out.splitlines() if " path " in line)
    timeout_row = next(line for line in out.splitlines() if " busy_timeout " in line)
    assert "str" in path_row
    assert "float" in timeout_row and "30.0" in timeout_row

    ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")
    out = ok("metadata-store", "flavor", "describe", "fakemysql")
    password_row = next(line for line in out.splitlines() if " password " in line)
    assert "secret reference" in password_row


def test_flavor_register(home: Path) -> None:
    out = ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")
    assert "Registered metadata store flavor fakemysql from tests.flavors:FakeMysqlFlavor" in out
    row = next(line for line in ok("metadata-store", "flavor", "list").splitlines() if "fakemysql" in line)
    assert "registered" in row and "MySQL-style test store" in row
    ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")  # again: no-op
    assert stored_config(home)["flavors"] == ["tests.flavors:FakeMysqlFlavor"]
    # Only metadata-store knows it.
    assert "fakemysql" not in ok("artifact-store", "flavor", "list")


@pytest.mark.parametrize(
    ("source", "fragments"),
    [
        (
            "tests.no_such_module:Flavor",
            ("cannot import flavor 'tests.no_such_module:Flavor'", "ModuleNotFoundError"),
        ),
        ("tests.flavors:Missing", ("cannot import flavor 'tests.flavors:Missing'", "AttributeError")),
        ("not-a-path", ("must look like package.module:FlavorClass",)),
        ("tests.flavors:NotAFlavor", ("is not a flavor", "MetadataStoreFlavor")),
        ("tests.flavors:IncompleteFlavor", ("does not implement create",)),
        (
            "tests.flavors:OtherArtifactFlavor",
            ("is an artifact store flavor, not a metadata store one",),
        ),
        (
            "tests.flavors:ClashingFlavor",
            ("a metadata store flavor named 'sqlite' already exists (built-in", "give yours another name"),
        ),
    ],
)
def test_flavor_register_refusals(home: Path, source: str, fragments: tuple[str, ...]) -> None:
    message = refused("metadata-store", "flavor", "register", source)
    for fragment in fragments:
        assert fragment in message
    assert not (home / "config.yaml").exists() or stored_config(home)["flavors"] == []


def test_literal_secret_is_refused_with_the_reference_syntax(home: Path) -> None:
    ok("metadata-store", "flavor", "register", "tests.flavors:FakeMysqlFlavor")
    message = refused("metadata-store", "register", "db", "--flavor=fakemysql", "--password=hunter2")
    assert "refusing to store a clear-text secret in field 'password'" in message
    assert "${env:" in message and "${file:/path/to/secret}" in message
    assert "hunter2" not in message

    ok("metadata-store", "register", "db", "--flavor=fakemysql", "--password=${env:DB_PASSWORD}")
    message = refused("metadata-store", "update", "db", "--password=hunter2")
    assert "refusing to store a clear-text secret in field 'password'" in message
    assert "hunter2" not in (home / "config.yaml").read_text()

    ok("metadata-store", "update", "db", "--password=${file:/run/secrets/db}")
    assert "${file:/run/secrets/db}" in ok("metadata-store", "describe", "db")

    message = refused("metadata-store", "register", "nopw", "--flavor=fakemysql")
    assert "field 'password'" in message and "Field required" in message


# --------------------------------------------------------------------------- stacks


def test_stack_verbs(home: Path) -> None:
    assert ok("stack", "get").strip() == "default"
    ok("orchestrator", "register", "runner", "--flavor=local")
    ok("artifact-store", "register", "bucket", "--flavor=local")
    ok("metadata-store", "register", "team", "--flavor=sqlite", "--busy-timeout=5")

    out = ok("stack", "register", "prod", "-o", "runner", "-a", "bucket", "-m", "team")
    assert "Registered stack prod" in out and "Active stack" not in out
    assert ok("stack", "get").strip() == "default"
    out = ok("stack", "register", "staging", "--metadata-store", "team", "--set")
    assert "Active stack: staging" in out
    assert ok("stack", "get").strip() == "staging"

    out = ok("stack", "list")
    rows = {line.split("│")[2].strip(): line.split("│")[1:-1] for line in out.splitlines() if line.count("│") == 6}
    assert [c.strip() for c in rows["prod"]] == ["", "prod", "runner", "bucket", "team"]
    assert [c.strip() for c in rows["staging"]] == ["*", "staging", "default", "default", "team"]
    assert [c.strip() for c in rows["default"]] == ["", "default", "default", "default", "default"]

    out = ok("stack", "describe", "prod")
    assert out.startswith("stack prod\n")
    assert "runner" in out and "bucket" in out and str(home / "artifacts-bucket") in out
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.count("│") == 5}
    assert "team" in rows["metadata store"] and "sqlite" in rows["metadata store"]
    assert "runner" in rows["orchestrator"] and "local" in rows["orchestrator"]
    out = ok("stack", "describe")  # the active stack
    assert out.startswith("stack staging (active)")

    assert "Active stack: prod" in ok("stack", "set", "prod")
    assert ok("stack", "get").strip() == "prod"
    assert "Deleted stack staging" in ok("stack", "delete", "staging")
    assert "staging" not in ok("stack", "list")
    ok("stack", "set", "default")
    ok("stack", "delete", "prod")
    # The components stay, and can now be deleted.
    ok("metadata-store", "delete", "team")
    assert stored_config(home)["stacks"] == {}


def test_stack_register_defaults_to_the_default_components() -> None:
    ok("stack", "register", "plain")
    out = ok("stack", "describe", "plain")
    for line in out.splitlines()[2:]:
        if "│" in line and line.split("│")[1].strip():  # not a wrapped configuration's next line
            assert line.split("│")[2].strip() == "default"


def test_stack_refusals(home: Path) -> None:
    ok("metadata-store", "register", "team", "--flavor=sqlite")
    ok("stack", "register", "prod", "-m", "team", "--set")

    assert "a stack named 'prod' is already registered" in refused("stack", "register", "prod")
    assert "a stack named 'default' is already registered" in refused("stack", "register", "default")
    assert "invalid stack name '-x'" in refused("stack", "register", "--", "-x")
    for option, human in (("-o", "orchestrator"), ("-a", "artifact store"), ("-m", "metadata store")):
        message = refused("stack", "register", "broken", option, "ghost")
        assert f"no {human} named 'ghost'; registered: default" in message
    assert "broken" not in ok("stack", "list")

    message = refused("stack", "delete", "prod")
    assert "stack 'prod' is active" in message and "pipeledger stack set default" in message
    assert "the default stack cannot be deleted" in refused("stack", "delete", "default")
    ok("stack", "set", "default")
    assert "the default stack cannot be deleted" in refused("stack", "delete", "default")

    for args in (("delete", "ghost"), ("set", "ghost"), ("describe", "ghost")):
        assert "no stack named 'ghost'; registered: default, prod" in refused("stack", *args)
    assert ok("stack", "get").strip() == "default"


def test_cli_errors_on_a_corrupted_config_file(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "config.yaml").write_text("stacks: [oops\n")
    for args in (("stack", "list"), ("metadata-store", "list"), ("stack", "register", "s")):
        message = refused(*args)
        assert str(home / "config.yaml") in message and "not a valid pipeledger configuration" in message


def test_store_reads_what_the_cli_wrote(home: Path) -> None:
    ok("artifact-store", "register", "bucket", "--flavor=local")
    ok("stack", "register", "s", "-a", "bucket", "--set")
    config = ConfigStore(home).load()
    assert config.active_stack == "s"
    assert config.stack("s").artifact_store == "bucket"  # type: ignore[union-attr]
