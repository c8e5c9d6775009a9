"""The authoring contract: how ``@step`` reads a function, how step and pipeline calls are
checked, and what a run records about them.

Every pipeline here really runs and records into the per-test SQLite home.
"""

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import pytest

import pipeledger
from pipeledger import Client, DefinitionError, Pipeline, Status, Step, pipeline, step
from pipeledger.pipelines.pipeline import RunOptions
from pipeledger.steps.signature import OutputSpec

if TYPE_CHECKING:
    from fractions import Fraction


# --- steps shared by the tests -------------------------------------------------------------


@step
def load() -> Annotated[list, "data"]:
    """Load the data."""
    return [1, 2, 3]


@step
def scale(data: list, factor: int = 2) -> list:
    return [x * factor for x in data]


@step
def total(data: list) -> int:
    """Sum the values.

    Indented details are dedented.
    """
    return sum(data)


@step
def split(data: list) -> tuple[Annotated[list, "head"], Annotated[list, "tail"]]:
    return data[:1], data[1:]


@step
def sink(value: Any) -> None:
    print(value)


def match(text: str) -> str:
    """A ``pytest.raises(match=...)`` pattern matching ``text`` literally."""
    return re.escape(text)


def no_runs_recorded() -> bool:
    client = Client()
    return client.list_runs(limit=None) == [] and client.list_pipelines() == []


# --- reading a signature ---------------------------------------------------------------------


def test_arguments_without_default_are_inputs_with_default_parameters() -> None:
    @step
    def train(
        features: list,
        labels: list,
        lr: float = 0.01,
        layers: list = [64, 32],  # noqa: B006
        *,
        validation: dict,
        name: str | None = None,
    ) -> None:
        pass

    assert train.signature.inputs == ("features", "labels", "validation")
    assert train.signature.parameters == {"lr": 0.01, "layers": [64, 32], "name": None}


def test_a_step_without_arguments_has_no_inputs_or_parameters() -> None:
    assert load.signature.inputs == ()
    assert load.signature.parameters == {}


def _unannotated():
    return 1


def _none() -> None:
    pass


def _named() -> Annotated[int, "count"]:
    return 1


def _several() -> tuple[Annotated[list, "train"], Annotated[dict, "test"]]:
    return [], {}


def _plain_tuple() -> tuple[int, int]:
    return 1, 2


def _plain_type() -> dict:
    return {}


def _annotated_tuple() -> Annotated[tuple[int, int], "pair"]:
    return 1, 2


@pytest.mark.parametrize(
    ("func", "outputs", "multiple"),
    [
        (_unannotated, (OutputSpec("output", Any),), False),
        (_none, (), False),
        (_named, (OutputSpec("count", int),), False),
        (_several, (OutputSpec("train", list), OutputSpec("test", dict)), True),
        (_plain_tuple, (OutputSpec("output", tuple[int, int]),), False),
        (_plain_type, (OutputSpec("output", dict),), False),
        (_annotated_tuple, (OutputSpec("pair", tuple[int, int]),), False),
    ],
    ids=[
        "unannotated",
        "none",
        "annotated",
        "tuple-of-annotated",
        "plain-tuple",
        "plain-type",
        "annotated-tuple",
    ],
)
def test_return_annotation_declares_outputs(
    func: Callable[..., Any], outputs: tuple[OutputSpec, ...], multiple: bool
) -> None:
    s = step(func)
    assert s.signature.outputs == outputs
    assert s.signature.output_names == tuple(o.name for o in outputs)
    assert s.signature.multiple_outputs is multiple


# What ``from __future__ import annotations`` makes of annotations: strings, here naming a type
# imported only under TYPE_CHECKING, so that ``typing.get_type_hints`` fails on the function.
def _type_checking_only_input(value: "Fraction") -> 'Annotated[int, "rows"]':
    return 1


def _type_checking_only_none(value: "Fraction") -> "None":
    pass


def _type_checking_only_several(
    value: "Fraction",
) -> 'tuple[Annotated[int, "a"], Annotated[int, "b"]]':
    return 1, 2


@pytest.mark.parametrize(
    ("func", "names", "multiple"),
    [
        (_type_checking_only_input, ("rows",), False),
        (_type_checking_only_none, (), False),
        (_type_checking_only_several, ("a", "b"), True),
    ],
    ids=["annotated", "none", "tuple-of-annotated"],
)
def test_outputs_are_read_even_when_an_input_annotation_cannot_be_resolved(
    func: Callable[..., Any], names: tuple[str, ...], multiple: bool
) -> None:
    # Regression: with ``from __future__ import annotations`` and a type imported only under
    # TYPE_CHECKING, one unresolvable annotation used to turn every output into "output".
    s = step(func)
    assert s.signature.output_names == names
    assert s.signature.multiple_outputs is multiple
    assert s.signature.inputs == ("value",)


def test_docstring_entrypoint_and_name() -> None:
    assert total.docstring == "Sum the values.\n\nIndented details are dedented."
    assert total.entrypoint == f"{__name__}.total"
    assert total.name == "total"
    assert scale.docstring is None
    assert isinstance(total, Step)
    assert total.__doc__ == total.func.__doc__
    assert total.__name__ == "total"

    @step(name="renamed")
    def local() -> int:
        """Local step."""
        return 1

    assert local.name == "renamed"
    assert local.entrypoint == (f"{__name__}.test_docstring_entrypoint_and_name.<locals>.local")
    assert local.docstring == "Local step."


def test_the_run_records_what_the_signature_declares() -> None:
    @pipeline
    def recorded(factor: int = 3):
        data = load()
        head, tail = split(scale(data, factor=factor))
        total(tail)
        sink(head)

    run = recorded()
    assert run.status is Status.COMPLETED
    assert run.parameters == {"factor": 3}
    steps = run.config["steps"]
    assert list(steps) == ["load", "scale", "split", "total", "sink"]
    assert steps["scale"]["parameters"] == {"factor": 3}
    assert steps["scale"]["inputs"] == {"data": "load.data"}
    assert steps["split"]["outputs"] == ["head", "tail"]
    assert steps["total"]["inputs"] == {"data": "split.tail"}
    assert steps["total"]["upstream"] == ["split"]
    assert steps["sink"]["outputs"] == []

    assert run.steps["load"].docstring == "Load the data."
    assert run.steps["total"].entrypoint == f"{__name__}.total"
    assert run.steps["total"].docstring == total.docstring
    assert list(run.steps["split"].outputs) == ["head", "tail"]
    assert run.steps["split"].outputs["head"].read() == [3]
    assert run.steps["total"].output.read() == 15
    assert list(run.steps["sink"].outputs) == []
    assert "[3]" in run.steps["sink"].logs


# --- definition errors at definition time ------------------------------------------------------


@pytest.mark.parametrize(
    ("default", "problem"),
    [
        ({1, 2}, "got a builtins.set"),
        (object(), "got a builtins.object"),
        (float("nan"), "got nan, which JSON cannot hold"),
        (float("inf"), "got inf, which JSON cannot hold"),
        ([1, {"x": float("-inf")}], "got -inf, which JSON cannot hold"),
        ({1: "a"}, "got a dict key 1 of type int; keys must be strings"),
        (b"raw", "got a builtins.bytes"),
    ],
    ids=["set", "object", "nan", "inf", "nested-inf", "int-key", "bytes"],
)
def test_a_non_json_default_is_rejected_at_definition(default: Any, problem: str) -> None:
    def train(data: list, opts=default) -> None:
        pass

    with pytest.raises(
        DefinitionError,
        match=match(
            f"step 'train': argument 'opts' (a parameter, because it has a default) must be a JSON value ({problem})"
        ),
    ):
        step(train)


def test_an_output_name_declared_twice_is_rejected() -> None:
    def twice() -> tuple[Annotated[int, "model"], Annotated[int, "model"]]:
        return 1, 2

    with pytest.raises(DefinitionError, match=match("step 'twice': output name 'model' is declared twice")):
        step(twice)


def test_an_unnamed_member_of_a_named_output_tuple_is_rejected() -> None:
    def half_named() -> tuple[Annotated[int, "model"], int]:
        return 1, 2

    with pytest.raises(
        DefinitionError,
        match=match("step 'half_named': output 2 of the returned tuple has no name"),
    ):
        step(half_named)


def test_var_positional_and_var_keyword_arguments_are_rejected() -> None:
    def with_args(data, *rest) -> None:
        pass

    def with_kwargs(data, **options) -> None:
        pass

    with pytest.raises(
        DefinitionError,
        match=match("step 'with_args': argument 'rest': *args and **kwargs are not supported"),
    ):
        step(with_args)
    with pytest.raises(
        DefinitionError,
        match=match("step 'with_kwargs': argument 'options': *args and **kwargs are not supported"),
    ):
        step(with_kwargs)


def test_positional_only_arguments_are_rejected() -> None:
    def positional(data, /) -> None:
        pass

    with pytest.raises(
        DefinitionError,
        match=match("step 'positional': argument 'data': positional-only arguments"),
    ):
        step(positional)


@pytest.mark.parametrize("with_default", [False, True], ids=["input", "parameter"])
def test_the_argument_name_id_is_reserved(with_default: bool) -> None:
    if with_default:

        def uses_id(data, id: str = "x") -> None:
            pass
    else:

        def uses_id(data, id) -> None:
            pass

    with pytest.raises(
        DefinitionError,
        match=match("step 'uses_id': argument 'id': the name 'id' is reserved; rename it"),
    ):
        step(uses_id)


def test_the_step_name_given_to_the_decorator_is_used_in_errors() -> None:
    with pytest.raises(DefinitionError, match=match("step 'custom': argument 'id'")):
        step(name="custom")(lambda_like_with_id)


def lambda_like_with_id(id) -> None:
    pass


def test_step_and_pipeline_decorate_only_functions() -> None:
    with pytest.raises(DefinitionError, match="@step must decorate a function"):
        step(len)  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="@pipeline must decorate a function"):
        pipeline(len)  # type: ignore[arg-type]


def test_pipeline_definition_errors() -> None:
    def star(*args) -> None:
        pass

    def bad_default(seed=float("nan")) -> None:
        pass

    with pytest.raises(DefinitionError, match=match("pipeline 'star': *args/**kwargs are not supported")):
        pipeline(star)
    with pytest.raises(
        DefinitionError,
        match=match("pipeline 'bad_default': parameter 'seed' must be a JSON value (got nan"),
    ):
        pipeline(bad_default)


def test_definition_errors_are_pipeledger_and_type_errors() -> None:
    assert issubclass(pipeledger.DefinitionError, pipeledger.PipeledgerError)
    assert issubclass(pipeledger.DefinitionError, TypeError)


# --- definition errors at call time: the message, and nothing is recorded ----------------


@pipeline
def unknown_parameter():
    scale(load(), fator=3)


@pipeline
def set_parameter():
    scale(load(), factor={1, 2})


@pipeline
def object_parameter():
    scale(load(), factor=object())


@pipeline
def nan_parameter():
    scale(load(), factor=float("nan"))


@pipeline
def int_key_parameter():
    scale(load(), factor={1: 2})


@pipeline
def raw_input():
    total([1, 2, 3])


@pipeline
def missing_input():
    load()
    total()


@pipeline
def artifact_to_parameter():
    data = load()
    scale(data, factor=data)


@pipeline
def all_outputs_to_one_input():
    total(split(load()))


@pipeline
def too_many_arguments():
    data = load()
    scale(data, 2, 3)


@pipeline
def argument_given_twice():
    data = load()
    scale(data, data=data)


@pipeline
def duplicate_id():
    data = load()
    total(data, id="sum")
    total(data, id="sum")


@pipeline
def empty_id():
    total(load(), id="")


@pipeline
def output_of_another_pipeline():
    total(_foreign_ref())


def _foreign_ref() -> Any:
    from pipeledger.pipelines.tracing import OutputRef

    return OutputRef("elsewhere", "data")


@pipeline
def branching():
    if load():
        sink(1)


@pipeline
def misuses_an_output(how: str = "compare"):
    data, count = load(), total(load(id="again"))
    uses: dict[str, Callable[[], Any]] = {
        "compare": lambda: count > 2,
        "equal": lambda: count == 6,
        "iterate": lambda: [x for x in data],
        "unpack": lambda: tuple(data),
        "len": lambda: len(data),
        "index": lambda: data[0],
        "arithmetic": lambda: count + 1,
        "reflected": lambda: 1 + count,
        "number": lambda: float(count),
        "format": lambda: f"{count:.2f}",
        "membership": lambda: 1 in data,
    }
    uses[how]()
    sink(count)


@pipeline
def calls_no_step(n: int = 1):
    return n + 1


@pipeline
def with_parameters(n: int = 1, label: str = "x"):
    scale(load(), factor=n)


CALL_ERRORS = {
    "unknown-parameter": (
        unknown_parameter,
        {},
        "step 'scale': unknown parameter 'fator'; inputs: data; parameters: factor",
    ),
    "set-parameter": (
        set_parameter,
        {},
        "step 'scale': parameter 'factor' must be a JSON value (got a builtins.set)",
    ),
    "object-parameter": (
        object_parameter,
        {},
        "step 'scale': parameter 'factor' must be a JSON value (got a builtins.object)",
    ),
    "nan-parameter": (
        nan_parameter,
        {},
        "step 'scale': parameter 'factor' must be a JSON value (got nan, which JSON cannot hold)",
    ),
    "int-key-parameter": (
        int_key_parameter,
        {},
        "step 'scale': parameter 'factor' must be a JSON value (got a dict key 1 of type int",
    ),
    "raw-input": (
        raw_input,
        {},
        "step 'total': input 'data' expects an artifact (the output of an upstream step) but got a raw list",
    ),
    "missing-input": (
        missing_input,
        {},
        "step 'total': input 'data' is missing; pass it the output of an upstream step",
    ),
    "artifact-to-parameter": (
        artifact_to_parameter,
        {},
        "step 'scale': parameter 'factor' got an artifact (<output load.data>)",
    ),
    "all-outputs-to-one-input": (
        all_outputs_to_one_input,
        {},
        "step 'total': input 'data' got all 2 outputs of step 'split'; unpack them and pass one",
    ),
    "too-many-arguments": (
        too_many_arguments,
        {},
        "step 'scale': takes 2 arguments (data, factor) but 3 were given",
    ),
    "argument-given-twice": (
        argument_given_twice,
        {},
        "step 'scale': argument 'data' given twice",
    ),
    "duplicate-id": (
        duplicate_id,
        {},
        "pipeline 'duplicate_id': a step with id 'sum' is already in the pipeline",
    ),
    "empty-id": (empty_id, {}, "step 'total': id must be a non-empty string, got ''"),
    "foreign-output": (
        output_of_another_pipeline,
        {},
        "step 'total': input 'data' refers to step 'elsewhere', which is not part of this pipeline",
    ),
    "branching-on-output": (
        branching,
        {},
        "the output load.data is a placeholder in the pipeline body, not a value: the body runs at "
        "definition time, before any step has run, so it cannot branch on (test the truth of) it. "
        "Pass it to a step and use the value there",
    ),
    "calls-no-step": (calls_no_step, {}, "pipeline 'calls_no_step' calls no step"),
    "unknown-pipeline-parameter": (
        with_parameters,
        {"bogus": 1},
        "pipeline 'with_parameters': got an unexpected keyword argument 'bogus'; its parameters are: n, label",
    ),
    "too-many-pipeline-arguments": (
        with_parameters,
        {"args": (1, "a", 3)},
        "pipeline 'with_parameters': too many positional arguments; its parameters are: n, label",
    ),
    "non-json-pipeline-argument": (
        with_parameters,
        {"label": {"a", "b"}},
        "pipeline 'with_parameters': parameter 'label' must be a JSON value (got a builtins.set)",
    ),
}


MISUSES = {
    "compare": "total.output ... compare (>)",
    "equal": "total.output ... compare (==)",
    "iterate": "load.data ... iterate over (or unpack)",
    "unpack": "load.data ... iterate over (or unpack)",
    "len": "load.data ... take the len() of",
    "index": "load.data ... index ([0])",
    "arithmetic": "total.output ... compute with (arithmetic on)",
    "reflected": "total.output ... compute with (arithmetic on)",
    "number": "total.output ... compute with (arithmetic on)",
    "format": "total.output ... format ('.2f')",
    "membership": "load.data ... test membership (in) of",
}
CALL_ERRORS.update(
    {
        f"output-{how}": (
            misuses_an_output,
            {"how": how},
            f"the output {text.split(' ... ')[0]} is a placeholder in the pipeline body, not a value: the "
            f"body runs at definition time, before any step has run, so it cannot {text.split(' ... ')[1]} it.",
        )
        for how, text in MISUSES.items()
    }
)


def test_an_attribute_of_an_output_is_explained() -> None:
    @pipeline
    def predicts() -> None:
        load().shape  # noqa: B018

    with pytest.raises(AttributeError, match=match("the output load.data is a placeholder in the pipeline body")):
        predicts()
    assert no_runs_recorded()


@pytest.mark.parametrize(("failing", "kwargs", "message"), CALL_ERRORS.values(), ids=CALL_ERRORS)
def test_a_call_time_definition_error_names_the_problem_and_records_nothing(
    failing: Pipeline, kwargs: dict[str, Any], message: str
) -> None:
    kwargs = dict(kwargs)
    args = kwargs.pop("args", ())
    with pytest.raises(DefinitionError, match=match(message)):
        failing(*args, **kwargs)
    assert no_runs_recorded()

    # The same home records a correct pipeline: the emptiness above is not an accident.
    run = with_parameters(n=3)
    assert [r.name for r in Client().list_runs()] == [run.name] == ["with_parameters-1"]
    assert run.steps["scale"].output.read() == [3, 6, 9]


def test_a_definition_error_leaves_no_tracer_behind() -> None:
    with pytest.raises(DefinitionError):
        raw_input()
    # Outside a pipeline a step runs again, so the failed trace did not leak.
    assert total([1, 2]) == 3


@pytest.mark.parametrize("via", ["with_options", "decorator"])
def test_an_unknown_run_name_placeholder_is_rejected(via: str) -> None:
    message = match(
        "pipeline 'with_parameters': run_name 'x-{bogus}' uses unknown placeholder {bogus}; "
        "available: {pipeline}, {n}, {date}, {time}"
    )
    with pytest.raises(DefinitionError, match=message):
        if via == "with_options":
            with_parameters.with_options(run_name="x-{bogus}")
        else:
            pipeline(run_name="x-{bogus}")(with_parameters.func)
    assert no_runs_recorded()


def test_a_malformed_run_name_is_rejected() -> None:
    with pytest.raises(DefinitionError, match=match("pipeline 'with_parameters': run_name 'x-{'")):
        with_parameters.with_options(run_name="x-{")


# --- calling steps and pipelines ---------------------------------------------------------------


def test_a_step_called_outside_a_pipeline_just_runs_the_function() -> None:
    assert load() == [1, 2, 3]
    assert scale([1, 2], factor=5) == [5, 10]
    assert scale([1, 2]) == [2, 4]
    assert total(data=[1, 2, 3]) == 6
    assert split([1, 2, 3]) == ([1], [2, 3])
    assert sink("hello") is None
    # The checks made inside a pipeline do not apply: raw inputs, non-JSON parameters pass.
    assert scale((1,), factor=float("inf")) == [float("inf")]
    assert no_runs_recorded()


def test_a_step_called_outside_a_pipeline_raises_what_the_function_raises() -> None:
    with pytest.raises(TypeError):
        total()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        total([1], id="x")  # type: ignore[call-arg]


def test_repeated_calls_of_a_step_get_numbered_names_and_id_names_a_call() -> None:
    @pipeline
    def repeated():
        data = load()
        total(data)
        total(data)
        total(data, id="custom")
        total(scale(data, factor=10))
        load(id="load_again")

    run = repeated()
    assert run.status is Status.COMPLETED
    names = ["load", "total", "total_2", "custom", "scale", "total_3", "load_again"]
    assert list(run.config["steps"]) == names
    assert sorted(run.step_names) == sorted(names)
    assert run.steps["total"].output.read() == 6
    assert run.steps["total_2"].output.read() == 6
    assert run.steps["custom"].output.read() == 6
    assert run.steps["total_3"].output.read() == 60
    assert run.steps["total_3"].config["inputs"] == {"data": "scale.output"}
    for name in ("total", "total_2", "custom", "total_3"):
        assert run.steps[name].entrypoint == f"{__name__}.total"
    assert run.steps["load_again"].output.read() == [1, 2, 3]


def test_an_explicit_id_takes_precedence_over_numbering() -> None:
    @pipeline
    def taken():
        data = load()
        total(data, id="total_2")
        total(data)
        total(data)

    run = taken()
    assert list(run.config["steps"]) == ["load", "total_2", "total", "total_3"]


def test_with_options_returns_a_new_pipeline_and_leaves_the_original_unchanged() -> None:
    @pipeline
    def configurable(n: int = 2):
        """Configurable pipeline."""
        scale(load(), factor=n)

    assert configurable.options == RunOptions()
    renamed = configurable.with_options(run_name="nightly-{n}", enable_cache=False, quiet=True)
    assert renamed is not configurable
    assert isinstance(renamed, Pipeline)
    assert renamed.name == configurable.name == "configurable"
    assert renamed.docstring == configurable.docstring == "Configurable pipeline."
    assert renamed.options == RunOptions(run_name="nightly-{n}", enable_cache=False, quiet=True)
    assert configurable.options == RunOptions()

    # Chained: only the named options change.
    again = renamed.with_options(quiet=False)
    assert again.options == RunOptions(run_name="nightly-{n}", enable_cache=False, quiet=False)
    assert renamed.options.quiet is True

    first = renamed(n=4)
    second = configurable()
    assert first.name == "nightly-1"
    assert first.config["options"]["run_name"] == "nightly-{n}"
    assert first.config["options"]["enable_cache"] is False
    assert second.name == "configurable-2"
    assert second.config["options"]["run_name"] == "{pipeline}-{n}"
    assert second.config["options"]["enable_cache"] is None
    assert first.steps["scale"].output.read() == [4, 8, 12]
    assert second.steps["scale"].output.read() == [2, 4, 6]
    assert {p.name for p in Client().list_pipelines()} == {"configurable"}


def test_pipeline_parameters_are_bound_with_defaults_and_recorded() -> None:
    run = with_parameters(5)
    assert run.parameters == {"n": 5, "label": "x"}
    assert run.steps["scale"].parameters == {"factor": 5}
    assert run.steps["scale"].output.read() == [5, 10, 15]
