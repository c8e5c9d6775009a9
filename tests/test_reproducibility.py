"""Reproducibility and comparison: recorded code and environment, rerun, run diff, metrics."""

from __future__ import annotations

import importlib
import importlib.metadata
import linecache
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import pipeledger
from pipeledger import Client, PipeledgerError
from pipeledger.cli.main import cli
from pipeledger.reproduce import differences, load_pipeline

FLOW = """
from typing import Annotated

import fakepkg_{tag}
from pipeledger import log_metadata, pipeline, step


def scale(values):
    return [v * {factor} for v in values]


@step
def load(n: int = 4) -> list:
    return list(range(n))


@step
def train(rows: list, lr: float = 0.1) -> Annotated[dict, "model"]:
    log_metadata(accuracy=round(0.5 + lr, 3), version=fakepkg_{tag}.VERSION)
    return {{"w": sum(scale(rows)) * lr}}


@pipeline
def flow(lr: float = 0.1):
    train(load(), lr=lr)
"""


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args],
        cwd=repo,
        check=True,
        capture_output=True,
    )


def write_distribution(site: Path, tag: str, version: str) -> None:
    """An installed package ``fakepkg_<tag>`` at ``version`` (a module plus its dist-info)."""
    for old in site.glob(f"fakepkg_{tag}-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    (site / f"fakepkg_{tag}.py").write_text(f"VERSION = {version!r}\n")
    info = site / f"fakepkg_{tag}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakepkg_{tag}\nVersion: {version}\n")
    (info / "top_level.txt").write_text(f"fakepkg_{tag}\n")
    (info / "RECORD").write_text(f"fakepkg_{tag}.py,,\n")
    importlib.invalidate_caches()


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A git repository holding a pipeline module, and a fake installed package it imports."""
    import pipeledger.environment as environment

    tag = tmp_path.name.replace("-", "_").lower()[-20:]
    repo, site = tmp_path / "repo", tmp_path / "site"
    repo.mkdir()
    site.mkdir()
    write_distribution(site, tag, "1.0")
    module = f"flow_{tag}"
    (repo / f"{module}.py").write_text(FLOW.format(tag=tag, factor=2))
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "flow")
    monkeypatch.syspath_prepend(str(repo))
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(environment, "_DISTRIBUTIONS", None)  # re-read installed distributions
    yield repo, site, module, tag
    for name in (module, f"fakepkg_{tag}"):
        sys.modules.pop(name, None)


def test_run_records_what_reproduces_it(project) -> None:  # type: ignore[no-untyped-def]
    repo, _, module, tag = project
    run = importlib.import_module(module).flow(lr=0.2)
    assert run.git_sha is not None and len(run.git_sha) == 40 and run.git_dirty is False
    assert run.environment["packages"][f"fakepkg_{tag}"] == "1.0"
    assert run.environment["python"] and run.environment["platform"]
    assert run.environment["git"]["root"] == str(repo)
    assert run.config["pipeline"]["source_file"] == str(repo / f"{module}.py")
    code = run.steps["train"].cache_components["code"]
    assert {name.rpartition(".")[2] for name in code} == {"train", "scale"}  # the helper is recorded too
    assert differences(run, load_pipeline(run)) == []


def test_dirty_tree_changed_helper_and_package_version_are_reported(project) -> None:  # type: ignore[no-untyped-def]
    repo, site, module, tag = project
    run = importlib.import_module(module).flow()
    (repo / f"{module}.py").write_text(FLOW.format(tag=tag, factor=3))  # the helper changes, uncommitted
    write_distribution(site, tag, "2.0")
    linecache.clearcache()
    sys.modules.pop(module, None)
    sys.modules.pop(f"fakepkg_{tag}", None)

    found = differences(run, load_pipeline(run))
    assert "git tree clean → dirty" in found
    assert "source of helper `scale` (step `train`) changed" in found
    assert f"package fakepkg_{tag} 1.0 → 2.0" in found

    result = CliRunner().invoke(cli, ["run", "rerun", run.name, "--dry-run"])
    assert result.exit_code == 0
    assert "git tree clean → dirty" in result.stdout and f"fakepkg_{tag} 1.0 → 2.0" in result.stdout
    assert len(Client().list_runs()) == 1  # a dry run runs nothing

    result = CliRunner().invoke(cli, ["run", "rerun", run.name])
    assert result.exit_code == 0, result.output
    assert "differences from the recorded run" in result.stdout
    again = Client().list_runs(limit=1)[0]
    assert again.name != run.name and again.parameters == run.parameters
    assert again.git_dirty is True and again.environment["packages"][f"fakepkg_{tag}"] == "2.0"
    assert f"rerun-of:{run.name}" in again.tags
    assert again.steps["load"].is_cached and not again.steps["train"].is_cached  # the helper changed
    assert again.steps["train"].outputs["model"].read() == {"w": pytest.approx(1.8)}


def test_reproduce_from_the_api_after_a_commit(project) -> None:  # type: ignore[no-untyped-def]
    repo, _, module, _ = project
    run = importlib.import_module(module).flow(lr=0.3)
    (repo / "notes.txt").write_text("unrelated")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "notes")
    found = differences(run, load_pipeline(run))
    assert len(found) == 1 and found[0].startswith("git commit ")
    again = pipeledger.rerun(run)
    assert again.status == "completed" and again.parameters == {"lr": 0.3}
    assert all(step.is_cached for step in again.steps.values())  # same code, data and parameters


def test_run_reproduce_is_deprecated_and_still_reruns(project) -> None:  # type: ignore[no-untyped-def]
    _, _, module, _ = project
    run = importlib.import_module(module).flow(lr=0.3)
    with pytest.warns(DeprecationWarning, match=r"use pipeledger\.rerun\(run\)"):
        again = run.reproduce()
    assert again.status == "completed" and again.parameters == {"lr": 0.3}
    assert again.tags == [f"rerun-of:{run.name}"]


def test_run_diff_and_metrics_over_time(project) -> None:  # type: ignore[no-untyped-def]
    _, _, module, _ = project
    flow = importlib.import_module(module).flow
    a, b, c = flow(lr=0.1), flow(lr=0.2), flow(lr=0.2)
    found = {(d.section, d.item): (d.a, d.b) for d in a.diff(b)}
    assert found[("parameters", "pipeline lr")] == (0.1, 0.2)
    assert found[("parameters", "train lr")] == (0.1, 0.2)
    assert found[("metrics", "train.accuracy")] == (0.6, 0.7)
    assert ("outputs", "content of train.model") in found
    assert ("outputs", "content of load.output") not in found  # same data
    assert b.diff(c) == []

    result = CliRunner().invoke(cli, ["run", "diff", a.name, b.name])
    assert result.exit_code == 0 and "train.accuracy" in result.stdout and "0.6" in result.stdout
    assert "No difference" in CliRunner().invoke(cli, ["run", "diff", b.name, c.name]).stdout

    history = Client().get_pipeline("flow").metrics(["accuracy"])
    assert list(history.index) == [a.name, b.name, c.name]
    assert list(history["accuracy"]) == [0.6, 0.7, 0.7]  # c's train step was cached: metrics copied
    everything = Client().get_pipeline("flow").metrics(last=2)
    assert list(everything.index) == [b.name, c.name] and set(everything.columns) >= {"accuracy", "version"}

    result = CliRunner().invoke(cli, ["pipeline", "metrics", "flow", "accuracy"])
    assert result.exit_code == 0 and a.name in result.stdout and "0.7" in result.stdout


def test_metrics_plot_is_a_png(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("matplotlib")
    _, _, module, _ = project
    flow = importlib.import_module(module).flow
    for lr in (0.1, 0.2, 0.3):
        flow(lr=lr)
    out = tmp_path / "accuracy.png"
    result = CliRunner().invoke(cli, ["pipeline", "metrics", "flow", "accuracy", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 2000


FAILING_FLOW = """
from pipeledger import log_metadata, pipeline, step

@step
def train(lr: float = 0.1) -> float:
    log_metadata(accuracy=0.5 + lr, loss=10 - lr * 10, note="text")
    return lr

@step
def check(lr: float) -> None:
    log_metadata(margin=lr * 2)
    if lr > 0.25:
        raise ValueError("too fast")

@pipeline
def wobbly(lr: float = 0.1):
    check(train(lr=lr))
"""


def test_metrics_plot_has_a_panel_per_metric_and_marks_failed_runs(tmp_path: Path) -> None:
    """Issue 14: every metric was drawn on one axis (accuracy 0.6 and loss 9 share a scale) and
    nothing told a failed run's values apart."""
    pytest.importorskip("matplotlib")
    import matplotlib.image

    from pipeledger.comparison import metric_history, plot_metrics

    module = tmp_path / "wobbly_flow.py"
    module.write_text(FAILING_FLOW)
    sys.path.insert(0, str(tmp_path))
    try:
        wobbly = importlib.import_module("wobbly_flow").wobbly
        for lr in (0.1, 0.2, 0.3, 0.15):
            try:
                wobbly.with_options(enable_cache=False)(lr=lr)
            except PipeledgerError:
                assert lr == 0.3
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("wobbly_flow", None)

    history = metric_history(Client().store, "wobbly")
    assert history.columns == ["accuracy", "loss", "note", "margin"]
    assert [r["status"].value for r in history.records] == ["completed", "completed", "failed", "completed"]

    out = tmp_path / "metrics.png"
    figure = plot_metrics(history, out)  # "note" is text: no panel
    assert [a.get_ylabel() for a in figure.axes] == ["accuracy", "loss", "margin"]  # one axes per metric
    for axes in figure.axes:
        marked = [line for line in axes.get_lines() if line.get_label() == "failed run"]
        assert len(marked) == 1 and list(marked[0].get_xdata()) == [2]  # the third run failed
        assert marked[0].get_marker() == "X"
        assert "failed run" in [t.get_text() for t in axes.get_legend().get_texts()]
    assert matplotlib.image.imread(str(out)).shape[0] > 600  # three stacked panels

    result = CliRunner().invoke(cli, ["pipeline", "metrics", "wobbly", "--plot", str(tmp_path / "cli.png")])
    assert result.exit_code == 0, result.output
    assert "failed" in result.stdout and (tmp_path / "cli.png").stat().st_size > 2000


def test_metrics_with_an_unknown_key_fail_and_list_the_keys(project) -> None:  # type: ignore[no-untyped-def]
    _, _, module, _ = project
    importlib.import_module(module).flow(lr=0.1)
    result = CliRunner().invoke(cli, ["pipeline", "metrics", "flow", "accuracy", "nosuchkey"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: pipeline 'flow' has no metric 'nosuchkey'; its steps logged: accuracy, version"
    ]
    with pytest.raises(KeyError, match="no metrics 'acc', 'x'; its steps logged: accuracy, version"):
        Client().get_pipeline("flow").metrics(["acc", "x"])
    result = CliRunner().invoke(cli, ["pipeline", "metrics", "nosuchpipeline"])
    assert result.exit_code == 1 and "nosuchpipeline" in result.stderr


def test_metrics_without_pandas_are_records(monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeledger.comparison import metrics_frame
    from pipeledger.models import MetricPoint, utcnow

    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    now = utcnow()
    points = [
        MetricPoint("r1", "run-1", now, "train", "accuracy", 0.5),
        MetricPoint("r1", "run-1", now, "eval", "accuracy", 0.4),
        MetricPoint("r2", "run-2", now, "train", "accuracy", 0.6),
    ]
    assert metrics_frame(points) == [
        {"run": "run-1", "start_time": now, "train.accuracy": 0.5, "eval.accuracy": 0.4},
        {"run": "run-2", "start_time": now, "train.accuracy": 0.6},
    ]


def test_rerun_of_a_pipeline_that_cannot_be_found() -> None:
    from tests import pipelines as P

    run = P.training()
    record = Client().get_run(run.name)
    record.record.config["pipeline"]["entrypoint"] = "nowhere.training"  # as if the code had moved
    record.record.config["pipeline"]["source_file"] = "/nonexistent/flow.py"
    with pytest.raises(PipeledgerError, match=r"cannot find pipeline 'nowhere\.training'"):
        load_pipeline(record)


def test_package_versions_follow_an_upgrade_in_the_same_process(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Versions are cached per process, but installing another version is seen at once."""
    from pipeledger.environment import package_versions

    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    write_distribution(site, "inproc", "1.0")
    assert package_versions(["fakepkg_inproc"]) == {"fakepkg_inproc": "1.0"}
    assert package_versions(["fakepkg_inproc"]) == {"fakepkg_inproc": "1.0"}  # from the cache
    time.sleep(0.01)  # a distinct directory mtime on coarse-grained filesystems
    write_distribution(site, "inproc", "2.0")
    assert package_versions(["fakepkg_inproc"]) == {"fakepkg_inproc": "2.0"}


# --- pipelines run as scripts (`python file.py`) --------------------------------------------

SCRIPT = """
import sys
from pathlib import Path
from typing import Annotated

from pipeledger import pipeline, rerun, step

from {helpers} import scale

FACTOR = 3


@step
def load(n: int = 4) -> list:
    return list(range(n))


@step
def train(rows: list, lr: float = 0.1) -> Annotated[dict, "model"]:
    return {{"w": sum(scale(rows, FACTOR)) * lr}}


@pipeline
def scripted(lr: float = 0.1):
    train(load(), lr=lr)


{body}
"""

GUARDED = """
if __name__ == "__main__":
    with open(Path(__file__).with_suffix(".ran"), "a") as f:
        f.write("ran\\n")
    print(scripted(lr=0.5).name)
"""

UNGUARDED = """
with open(Path(__file__).with_suffix(".ran"), "a") as f:
    f.write("ran\\n")
first = scripted(lr=0.5)
if "--reproduce" in sys.argv:
    again = rerun(first)
    assert all(s.is_cached for s in again.steps.values()), again.steps
    assert again.steps["train"].cache_key == first.steps["train"].cache_key
    print(again.name)
"""


def write_script(folder: Path, body: str) -> Path:
    tag = folder.name.replace("-", "_").lower()[-20:]
    helpers = f"helpers_{tag}"
    (folder / f"{helpers}.py").write_text("def scale(values, factor):\n    return [v * factor for v in values]\n")
    script = folder / f"script_{tag}.py"
    script.write_text(SCRIPT.format(helpers=helpers, body=body))
    return script


def run_python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh process (this test's $PIPELEDGER_HOME, quiet)."""
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=180, check=False)


def pipeledger_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``pipeledger ARGS`` in a fresh process, as a user types it (not in the script's directory)."""
    return run_python("-c", "from pipeledger.cli.main import cli; cli()", *args, cwd=cwd)


def test_rerun_of_a_script_reports_no_change_hits_the_cache_and_does_not_run_the_script(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    script = write_script(folder, GUARDED)
    made = run_python(script.name, cwd=folder)
    assert made.returncode == 0, made.stderr
    run = Client().get_run(made.stdout.strip().splitlines()[-1])
    module = script.stem
    assert run.config["pipeline"]["entrypoint"] == f"{module}.scripted"  # not `__main__.scripted`
    assert run.steps["train"].entrypoint == f"{module}.train"
    assert set(run.steps["train"].cache_components["code"]) == {
        f"{module}.train",
        f"{module}.FACTOR",
        f"{script.stem.replace('script_', 'helpers_')}.scale",
    }

    dry = pipeledger_cli("run", "rerun", run.name, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert f"Code and environment are as recorded for {run.name}" in dry.stdout

    again = pipeledger_cli("run", "rerun", run.name, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "code and environment are as recorded" in again.stdout
    latest = Client().list_runs(limit=1)[0]
    assert latest.name != run.name and latest.parameters == {"lr": 0.5}
    assert all(step.is_cached for step in latest.steps.values())  # same code: every step from the cache
    assert len(Client().list_runs()) == 2  # the script's own `scripted(...)` call did not run again
    assert script.with_suffix(".ran").read_text() == "ran\n"


def test_rerun_of_a_script_without_a_main_guard_refuses_and_runs_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    script = write_script(folder, UNGUARDED)
    made = run_python(script.name, cwd=folder)
    assert made.returncode == 0, made.stderr
    run = Client().list_runs(limit=1)[0]
    for args in (("--dry-run",), ()):
        refused = pipeledger_cli("run", "rerun", run.name, *args, cwd=tmp_path)
        assert refused.returncode == 1
        assert "Traceback" not in refused.stderr
        assert f"{script} runs pipeline 'scripted' when it is loaded" in refused.stderr
        assert 'if __name__ == "__main__":' in refused.stderr
    assert len(Client().list_runs()) == 1
    assert script.with_suffix(".ran").read_text() == "ran\n" * 3  # loaded twice (its top level ran), ran nothing


def test_reproduce_inside_the_script_that_made_the_run_uses_the_loaded_script(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    script = write_script(folder, UNGUARDED)
    made = run_python(script.name, "--reproduce", cwd=folder)
    assert made.returncode == 0, made.stderr
    assert script.with_suffix(".ran").read_text() == "ran\n"  # the script was not executed again
    assert [r.name for r in Client().list_runs()] == ["scripted-2", "scripted-1"]


BOXED = """
from dataclasses import dataclass

from pipeledger import pipeline, step

SIZE = {size}


@dataclass
class Box:
    size: int


@step
def pack() -> Box:
    return Box(SIZE)


@pipeline
def boxes():
    pack()


if __name__ == "__main__":
    boxes()
"""


@pytest.mark.filterwarnings("ignore::pipeledger.PipeledgerWarning")  # Box is pickled, as documented
def test_a_rerun_of_a_script_stores_its_own_classes_readable_by_other_processes(tmp_path: Path) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    script = folder / "boxes_script.py"
    script.write_text(BOXED.format(size=1))
    made = run_python(script.name, cwd=folder)
    assert made.returncode == 0, made.stderr
    script.write_text(BOXED.format(size=2))  # the step's code changed: the rerun computes it
    again = pipeledger_cli("run", "rerun", "boxes-1", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "source of " in again.stdout and "`SIZE`" in again.stdout
    for name, size in (("boxes-1", 1), ("boxes-2", 2)):
        box = Client().get_run(name).steps["pack"].output.read()  # in this process: no `boxes_script` here
        assert type(box).__name__ == "Box" and box.size == size
