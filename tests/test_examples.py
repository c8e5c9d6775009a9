"""The shipped examples run and record what they claim."""

from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from pipeledger import Client, Status
from pipeledger.orchestrators.progress import LiveReporter

ROOT = Path(__file__).resolve().parent.parent


def load_example(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(f"example_{name}", ROOT / "examples" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.filterwarnings("error::pipeledger.PipeledgerWarning")  # the model is not pickled: no warning
def test_quickstart_records_a_model_that_reads_back_equal() -> None:
    quickstart = load_example("quickstart")
    run = quickstart.cancer_classifier()
    assert run.status is Status.COMPLETED
    recorded = Client().get_run(run.name)
    assert list(recorded.steps) == ["load_data", "split", "train_model", "evaluate"]

    model = recorded.steps["train_model"].outputs["model"].read()
    test = recorded.steps["split"].outputs["test"].read()
    assert type(model).__name__ == "RandomForestClassifier"
    assert model.get_params()["n_estimators"] == 20 and model.get_params()["max_depth"] == 2

    # The same step, run directly on the recorded training data, gives an identical model.
    train = recorded.steps["split"].outputs["train"].read()
    fresh = quickstart.train_model(train, n_estimators=20, max_depth=2)
    features = test.drop(columns="target")
    assert np.array_equal(model.predict_proba(features), fresh.predict_proba(features))

    accuracy = recorded.steps["evaluate"].metadata["accuracy"]
    assert 0.8 < accuracy <= 1.0
    assert recorded.steps["evaluate"].output.read() == accuracy
    assert "loaded 569 rows" in recorded.steps["load_data"].logs
    stored = recorded.steps["train_model"].outputs["model"]
    assert stored.materializer.endswith("SkopsMaterializer")  # skops, not pickle
    assert stored.metadata["trusted_types"] == ["sklearn.tree._tree.Tree"]


def test_quickstart_as_a_script_reruns_from_the_cache(tmp_path: Path) -> None:
    """``python examples/quickstart.py``, then ``pipeledger run rerun``: no change is reported, every
    step is a cache hit, and the script's own run (under its ``__main__`` guard) does not run again."""

    def python(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, *args], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    python(str(ROOT / "examples" / "quickstart.py"))
    cli = ("-c", "from pipeledger.cli.main import cli; cli()")
    dry = python(*cli, "run", "rerun", "cancer_classifier-1", "--dry-run")
    assert "Code and environment are as recorded for cancer_classifier-1" in dry
    assert "Recorded cancer_classifier-2: completed." in python(*cli, "run", "rerun", "cancer_classifier-1")
    assert [r.name for r in Client().list_runs()] == ["cancer_classifier-2", "cancer_classifier-1"]
    again = Client().get_run("cancer_classifier-2")
    assert all(step.is_cached for step in again.steps.values())
    assert again.config["pipeline"]["entrypoint"] == "quickstart.cancer_classifier"


def test_live_display_on_a_terminal() -> None:
    buffer = io.StringIO()
    reporter = LiveReporter(Console(file=buffer, force_terminal=True, width=100))
    reporter.run_started("training", "training-1", ["load", "train"])
    reporter.step_started("load")
    reporter.step_finished("load", "completed", 0.25, None)
    reporter.step_skipped("train", "upstream step load failed")
    reporter.run_finished("training-1", "failed", 1.0)
    screen = buffer.getvalue()
    for expected in ("training", "training-1", "load", "completed", "0.25s", "skipped", "failed"):
        assert expected in screen
