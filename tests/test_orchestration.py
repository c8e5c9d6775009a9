"""Running pipelines on the local orchestrator: what is recorded, the failure path, progress."""

from __future__ import annotations

import io
import sys
from typing import Annotated, Any, Optional, TypeVar, Union

import numpy as np
import pytest

from pipeledger import Client, DefinitionError, RunFailedError, Status, pipeline, step
from pipeledger.orchestrators.progress import PlainReporter, ProgressReporter, choose_reporter
from tests import pipelines as P


def test_run_records_everything_listed_in_the_data_model() -> None:
    run = P.training(lr=0.25, n_rows=3)
    view = Client().get_run(run.name)
    assert view.name == "training-1" and view.number == 1
    assert view.status is Status.COMPLETED
    assert view.parameters == {"lr": 0.25, "n_rows": 3}
    assert view.end_time is not None and view.end_time >= view.start_time
    assert set(view.config["steps"]) == {"load", "train", "evaluate"}
    assert view.config["steps"]["train"]["upstream"] == ["load"]
    assert view.config["steps"]["train"]["inputs"] == {"data": "load.output"}
    assert view.environment["python"] == f"{sys.version_info.major}.{sys.version_info.minor}." + str(
        sys.version_info.micro
    )
    assert "pipeledger" in view.environment["packages"]
    assert view.git_sha is None or len(view.git_sha) == 40
    assert view.code_hash and len(view.code_hash) == 64
    assert view.stack["metadata_store"]["flavor"] == "sqlite"
    assert view.stack["orchestrator"]["flavor"] == "local"

    assert list(view.steps) == ["load", "train", "evaluate"]
    train = view.steps["train"]
    assert train.entrypoint == "tests.pipelines.train"
    assert train.docstring == "Fit the model."
    assert train.parameters == {"lr": 0.25}
    assert train.config["outputs"] == ["model", "accuracy"]
    assert train.source_hash and len(train.source_hash) == 64
    assert train.status is Status.COMPLETED and train.error is None
    assert train.duration is not None
    assert train.metadata == {"accuracy": 0.75, "rows": 3}
    assert list(train.outputs) == ["model", "accuracy"]
    model = train.outputs["model"]
    assert model.read() == {"w": 0.25, "n": 3}
    assert model.type == "Data" and model.data_type == "builtins.dict"
    assert model.materializer.endswith("JSONMaterializer") and model.materializer_version == "1"
    assert len(model.content_hash) == 64 and model.size > 0
    assert model.uri.endswith(f"/training/training-1-{view.id}/train-{train.id}/model/{model.id}")
    assert model.producer is not None and model.producer.id == train.id
    assert train.inputs["data"].id == view.steps["load"].output.id
    assert view.steps["evaluate"].outputs == {}
    assert view.steps["evaluate"].parent_steps[0].name == "train"


def test_step_output_and_logging_are_captured() -> None:
    run = P.training()
    logs = run.steps["load"].logs
    assert "loading 4 rows" in logs
    assert "loaded via logging" in logs


def test_a_silent_step_has_no_logs_file() -> None:
    run = P.training()
    train = run.steps["train"]  # prints nothing
    assert train.logs == "" and train._record.logs_uri is None
    assert run.steps["load"]._record.logs_uri is not None  # it printed


def test_runs_are_numbered_per_pipeline() -> None:
    names = [P.training().name for _ in range(3)]
    assert names == ["training-1", "training-2", "training-3"]
    assert [r.name for r in Client().get_pipeline("training").runs] == names


def test_failing_step_fails_the_run_and_skips_dependents() -> None:
    with pytest.raises(RunFailedError, match="run 'failing-1' failed in step 'explode'") as caught:
        P.failing()
    assert isinstance(caught.value.__cause__, ValueError)
    assert caught.value.run_name == "failing-1" and caught.value.step_name == "explode"

    run = Client().get_run("failing-1")
    assert run.status is Status.FAILED
    assert "explode" in (run.error or "")
    assert set(run.steps) == {"load", "explode", "independent", "after_failure"}
    skipped = run.steps["after_failure"]  # never ran: recorded skipped, with no edges and no cache key
    assert skipped.status is Status.SKIPPED
    assert skipped.config["skipped"] == "upstream step explode failed"
    assert skipped.inputs == {} and skipped.outputs == {} and skipped.cache_key is None
    failed = run.steps["explode"]
    assert failed.status is Status.FAILED
    assert "ValueError: boom" in (failed.error or "") and "Traceback" in (failed.error or "")
    assert "about to fail" in failed.logs and "ValueError: boom" in failed.logs
    assert failed.outputs == {}
    assert run.steps["independent"].output.read() == "still ran"


@step
def may_fail(value: int = 1, fail: bool = False) -> int:
    if fail:
        raise ValueError("asked to fail")
    return value


@step
def after_may_fail(value: int) -> int:
    return value + 1


@pipeline(enable_cache=True)
def sometimes_failing(fail: bool = False):
    after_may_fail(may_fail(fail=fail))


def test_a_skipped_step_is_never_a_cache_entry() -> None:
    """Run 1 records ``after_may_fail`` completed, run 2 (its upstream fails) skipped; run 3 reuses
    run 1's result, and a cache miss is explained against run 1, never against the skipped step."""
    sometimes_failing()
    with pytest.raises(RunFailedError):
        sometimes_failing(fail=True)
    client = Client()
    first, second = client.get_run("sometimes_failing-1"), client.get_run("sometimes_failing-2")
    skipped = second.steps["after_may_fail"]
    assert second.status is Status.FAILED and skipped.status is Status.SKIPPED
    assert skipped.cache_explanation == "not run: upstream step may_fail failed"
    latest = client.store.latest_step_run("sometimes_failing", "after_may_fail", before=skipped.end_time)
    assert latest is not None and latest.id == first.steps["after_may_fail"].id  # the skipped one is passed over
    third = sometimes_failing()
    reused = third.steps["after_may_fail"]
    assert reused.status is Status.CACHED and reused.cached_from.id == first.steps["after_may_fail"].id


def test_wrong_number_of_outputs_fails_the_step() -> None:
    @step
    def mismatched() -> tuple[Annotated[int, "a"], Annotated[int, "b"]]:
        return 1  # type: ignore[return-value]

    @pipeline
    def bad():
        mismatched()

    with pytest.raises(RunFailedError) as caught:
        bad()
    assert "returned a single value but declares 2 outputs (a, b)" in str(caught.value.__cause__)


@step
def as_array() -> np.ndarray:
    return [1, 2, 3]  # type: ignore[return-value]


@step
def pair() -> tuple[Annotated[list, "first"], Annotated[dict, "second"]]:
    return [1], [2]  # type: ignore[return-value]


@pipeline
def typed():  # type: ignore[no-untyped-def]
    as_array()
    pair()


T = TypeVar("T")


@step
def lenient_outputs() -> tuple[
    Annotated[float, "an_int_as_float"],
    Annotated[int, "numpy_int"],
    Annotated[Optional[list], "none"],  # noqa: UP045
    Annotated[list[int], "items_unchecked"],
    Annotated[Union[str, dict], "member"],  # noqa: UP007
    Annotated[Any, "anything"],
    Annotated[T, "typevar"],  # type: ignore[valid-type]
]:
    return 3, np.int64(4), None, ["not", "ints"], {"a": 1}, {1, 2}, b"x"  # type: ignore[return-value]


@pipeline
def lenient():  # type: ignore[no-untyped-def]
    lenient_outputs()


def test_an_output_of_another_type_than_declared_fails_the_step_and_stores_nothing() -> None:
    with pytest.raises(RunFailedError) as caught:
        typed()
    assert isinstance(caught.value.__cause__, DefinitionError)
    run = Client().get_run("typed-1")
    assert run.status is Status.FAILED
    first = run.steps["as_array"]
    assert first.status is Status.FAILED and first.outputs == {}
    assert (first.error or "").endswith(
        "DefinitionError: step 'as_array': output 'output' is declared numpy.ndarray but the step returned a "
        "builtins.list; return a numpy.ndarray or change the annotation (nothing was stored)"
    )
    second = run.steps["pair"]
    assert second.status is Status.FAILED
    assert "output 'second' is declared dict but the step returned a builtins.list" in (second.error or "")
    assert second.outputs == {}  # the first output, of the right type, was not stored either


@pytest.mark.filterwarnings("ignore::pipeledger.PipeledgerWarning")  # a set and a NumPy int are pickled
def test_declared_output_types_accept_what_the_annotation_allows() -> None:
    run = lenient()
    assert run.status is Status.COMPLETED
    assert run.steps["lenient_outputs"].outputs["numpy_int"].read() == 4
    assert run.steps["lenient_outputs"].outputs["typevar"].read() == b"x"


class Recording(ProgressReporter):
    """Keeps the durations a run reports to its progress display."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def step_finished(self, step: str, status: str, seconds: float, error: str | None) -> None:
        self.seconds[step] = seconds

    def run_finished(self, run: str, status: str, seconds: float) -> None:
        self.seconds[run] = seconds


def test_the_progress_display_shows_the_recorded_durations(monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeledger.pipelines.run as running

    displays: list[Recording] = []
    monkeypatch.setattr(running, "choose_reporter", lambda quiet: displays.append(Recording()) or displays[-1])
    P.training()
    P.training()  # every step cached
    with pytest.raises(RunFailedError):
        P.failing()
    for shown, name in zip(displays, ["training-1", "training-2", "failing-1"]):
        run = Client().get_run(name)
        ran = [s for s in run.steps.values() if s.status is not Status.SKIPPED]  # shown without a duration
        durations = {run.name: run.duration, **{s.name: s.duration for s in ran}}
        assert set(shown.seconds) == set(durations)
        for what, duration in durations.items():
            assert duration is not None
            assert shown.seconds[what] == pytest.approx(duration.total_seconds(), abs=1e-6), what
    assert all(s.is_cached and s.duration.total_seconds() == 0 for s in Client().get_run("training-2").steps.values())  # type: ignore[union-attr]


def test_run_name_template_and_explicit_name() -> None:
    run = P.training.with_options(run_name="nightly-{n}")()
    assert run.name == "nightly-1"
    fixed = P.training.with_options(run_name="fixed")()
    assert fixed.name == "fixed"
    from pipeledger import RunExistsError

    with pytest.raises(RunExistsError, match="'fixed' already exists"):
        P.training.with_options(run_name="fixed")()


def test_plain_progress_lines() -> None:
    stream = io.StringIO()
    reporter = PlainReporter(stream)
    reporter.run_started("training", "training-1", ["load", "train"])
    reporter.step_started("load")
    reporter.step_finished("load", "completed", 0.5, None)
    reporter.step_skipped("train", "upstream step load failed")
    reporter.run_finished("training-1", "failed", 1.0)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "[pipeledger] run training-1 of pipeline training started (2 steps)"
    assert "[pipeledger] step load completed in 0.50s" in lines
    assert lines[-1] == "[pipeledger] run training-1 failed in 1.00s"


def test_quiet_option_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(choose_reporter(True)).__name__ == "ProgressReporter"
    monkeypatch.setenv("PIPELEDGER_QUIET", "1")
    assert type(choose_reporter(None)).__name__ == "ProgressReporter"
    monkeypatch.setenv("PIPELEDGER_QUIET", "0")
    assert isinstance(choose_reporter(None), PlainReporter)  # stderr is not a terminal in tests


def test_progress_is_shown_when_not_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    P.training.with_options(quiet=False)()
    err = capsys.readouterr().err
    assert "[pipeledger] step train completed in" in err
    assert "[pipeledger] run training-1 completed in" in err


def test_step_outside_pipeline_runs_function() -> None:
    assert P.load(n_rows=2) == {"x": [0, 1]}
    assert Client().list_runs() == []
