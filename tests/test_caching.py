"""Step caching with real pipelines: what invalidates a cached step (exactly that step and what
consumes its changed output) and what does not, reuse of the original artifacts, the cache
controls, the stored key components, and the single indexed look-up query.

Code changes between runs are made the way a user makes them: module files are rewritten on
disk and reloaded, and the pipeline is taken from the reloaded module.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import linecache
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from string import Template
from types import ModuleType
from typing import Annotated, Any

import fsspec
import pytest
from click.testing import CliRunner
from sqlalchemy import event

from pipeledger import Client, DefinitionError, RunView, Status, log_metadata, pipeline, step
from pipeledger.artifacts.materializers import MaterializerRegistry, register_materializer
from pipeledger.cli.main import cli

JSON_MATERIALIZER = "pipeledger.artifacts.materializers.builtin.JSONMaterializer@1"


# --- user code written at test time ----------------------------------------------------------


class UserCode:
    """User modules in a directory on ``sys.path``, named ``<prefix>_<short>`` (unique per test).

    ``write`` (re)writes a module's file; ``load`` imports it, or reloads it if it was imported
    before, as a user editing code between runs in one process would.
    """

    def __init__(self, root: Path, prefix: str) -> None:
        self.root = root
        self.prefix = prefix

    def name(self, short: str) -> str:
        return f"{self.prefix}_{short}"

    def write(self, short: str, source: str, **substitutions: str) -> None:
        """Write ``source`` (``$p`` stands for the prefix, other ``$names`` for the substitutions)."""
        text = Template(textwrap.dedent(source)).substitute(p=self.prefix, **substitutions)
        (self.root / f"{self.name(short)}.py").write_text(text)

    def load(self, short: str) -> ModuleType:
        name = self.name(short)
        linecache.checkcache()
        linecache.clearcache()
        importlib.invalidate_caches()
        if name in sys.modules:
            return importlib.reload(sys.modules[name])
        return importlib.import_module(name)


@pytest.fixture
def code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[UserCode]:
    root = tmp_path / "code"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    # No .pyc: a file rewritten within the same second with the same size would load stale bytecode.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    yield UserCode(root, "plc_" + re.sub(r"\W", "_", tmp_path.name))
    for name, module in list(sys.modules.items()):
        if str(getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]
    linecache.clearcache()


def edit(text: str, old: str, new: str) -> str:
    assert old in text, f"{old!r} not in the source"
    return text.replace(old, new)


HELPERS = """
def normalize(values, scale):
    top = max(values) or 1
    return [scale * v / top for v in values]
"""

UNRELATED = """
def banner(text):
    return f"== {text} =="
"""

# load -> prepare (calls the helper) -> train
FLOW = """
from typing import Annotated

from pipeledger import log_metadata, pipeline, step

import ${p}_unrelated
$import_helper


@step
def load(n: int = 3) -> Annotated[list, "data"]:
    return list(range(1, n + 1))


@step
def prepare(data: list, scale: int = 1) -> Annotated[list, "data"]:
    return $helper(data, scale)


@step
def train(data: list, lr: float = 0.1) -> Annotated[dict, "model"]:
    log_metadata(loss=round(1 - lr, 3))
    return {"w": round(sum(data) * lr, 6)}


@pipeline
def flow(n: int = 3, scale: int = 1, lr: float = 0.1):
    train(prepare(load(n=n), scale=scale), lr=lr)
"""

IMPORT_STYLES = {
    "from-import": {"import_helper": "from ${p}_helpers import normalize", "helper": "normalize"},
    "module-attribute": {"import_helper": "import ${p}_helpers as helpers", "helper": "helpers.normalize"},
}


def write_flow(code: UserCode, flow: str = FLOW, style: str = "from-import") -> None:
    subs = {k: Template(v).substitute(p=code.prefix) for k, v in IMPORT_STYLES[style].items()}
    code.write("flow", flow, **subs)


def load_flow(code: UserCode, *, helpers: str = HELPERS, flow: str = FLOW, style: str = "from-import") -> Any:
    """Write the helper, unrelated and flow modules and return the ``flow`` pipeline."""
    code.write("helpers", helpers)
    code.write("unrelated", UNRELATED)
    write_flow(code, flow, style)
    return code.load("flow").flow


def reload_flow(code: UserCode, *changed: str) -> Any:
    """Reload the changed modules, then the flow module; return its (new) pipeline."""
    for short in changed:
        code.load(short)
    return code.load("flow").flow


# --- explanations ------------------------------------------------------------------------------


def explanations(run: RunView) -> dict[str, str]:
    """Each step's cache explanation, after checking that it agrees with ``is_cached``."""
    for s in run.steps.values():
        assert s.is_cached == s.cache_explanation.startswith("cache hit: "), (s.name, s.cache_explanation)
        assert s.is_cached == (s.status is Status.CACHED)
    return {name: s.cache_explanation for name, s in run.steps.items()}


def hit(step_name: str, run_name: str) -> str:
    return f"cache hit: reused the outputs of step `{step_name}` of run `{run_name}`"


def miss(reason: str) -> str:
    return f"cache miss: {reason}"


FIRST = miss("no earlier run of this step")


# --- 1. what invalidates a step, and what does not ---------------------------------------------


def test_first_run_misses_and_unchanged_or_reformatted_code_hits(code: UserCode) -> None:
    flow = load_flow(code)
    first = flow()
    assert explanations(first) == {"load": FIRST, "prepare": FIRST, "train": FIRST}
    all_hit = {name: hit(name, "flow-1") for name in ("load", "prepare", "train")}

    assert explanations(flow()) == all_hit

    # Formatting only, in a user module the flow imports but no step uses.
    code.write("unrelated", "# utilities\n\n\n" + UNRELATED.replace("\n", "\n\n") + "\n# end\n")
    flow = reload_flow(code, "unrelated")
    assert explanations(flow()) == all_hit

    # Formatting only, in the helper a step does use, and in the steps' own module.
    code.write(
        "helpers",
        """
        # helpers used by prepare


        def normalize(values,
                      scale):  # spread over two lines
            top = (max(values)
                   or 1)

            return [scale*v/top for v in values]  # same expression
        """,
    )
    write_flow(code, FLOW.replace("\n\n@step", "\n\n\n# a step\n@step"))
    flow = reload_flow(code, "helpers")
    run = flow()
    assert explanations(run) == all_hit
    assert run.steps["train"].output.read() == first.steps["train"].output.read()


def test_changing_a_step_body_invalidates_only_that_step_and_what_its_output_changes(
    code: UserCode,
) -> None:
    flow = load_flow(code)
    first = flow()

    changed = edit(FLOW, "round(sum(data) * lr, 6)", "round(sum(data) * lr * 2, 6)")
    write_flow(code, changed)
    flow = reload_flow(code)
    second = flow()
    assert explanations(second) == {
        "load": hit("load", "flow-1"),
        "prepare": hit("prepare", "flow-1"),
        "train": miss("source of step `train` changed"),
    }
    assert second.steps["train"].output.read() == {"w": 0.4}
    assert first.steps["train"].output.read() == {"w": 0.2}

    # A body change of the middle step that does not change its output: train still hits.
    write_flow(code, edit(changed, "return $helper(data, scale)", "return list($helper(data, scale))"))
    flow = reload_flow(code)
    assert explanations(flow()) == {
        "load": hit("load", "flow-1"),
        "prepare": miss("source of step `prepare` changed"),
        "train": hit("train", "flow-2"),
    }


@pytest.mark.parametrize("style", list(IMPORT_STYLES))
def test_changing_a_helper_in_another_user_module_invalidates_the_step_calling_it(code: UserCode, style: str) -> None:
    flow = load_flow(code, style=style)
    first = flow()
    assert f"{code.name('helpers')}.normalize" in first.steps["prepare"].cache_components["code"]

    code.write("helpers", edit(HELPERS, "scale * v / top", "round(scale * v / top, 2)"))
    flow = reload_flow(code, "helpers")
    second = flow()
    assert explanations(second) == {
        "load": hit("load", "flow-1"),
        "prepare": miss("source of helper `normalize` changed"),
        "train": miss("input `data` content changed"),
    }
    assert second.steps["prepare"].output.read() == [0.33, 0.67, 1.0]


def test_changing_a_helpers_default_argument_invalidates_the_step_calling_it(code: UserCode) -> None:
    """A default value lives on the function, not its code object: same bytecode, new behaviour."""
    helpers = """
    def normalize(values, scale, digits=3):
        top = max(values) or 1
        return [round(scale * v / top, digits) for v in values]
    """
    flow = load_flow(code, helpers=helpers)
    assert flow().steps["prepare"].output.read() == [0.333, 0.667, 1.0]

    code.write("helpers", edit(helpers, "digits=3", "digits=1"))
    flow = reload_flow(code, "helpers")
    second = flow()
    assert explanations(second) == {
        "load": hit("load", "flow-1"),
        "prepare": miss("source of helper `normalize` changed"),
        "train": miss("input `data` content changed"),
    }
    assert second.steps["prepare"].output.read() == [0.3, 0.7, 1.0]


def test_changing_a_parameter_invalidates_only_the_step_taking_it(code: UserCode) -> None:
    flow = load_flow(code)
    flow(lr=0.1)
    second = flow(lr=0.2)
    assert explanations(second) == {
        "load": hit("load", "flow-1"),
        "prepare": hit("prepare", "flow-1"),
        "train": miss("parameter `lr` 0.1 → 0.2"),
    }
    assert second.steps["train"].parameters == {"lr": 0.2}


def test_changed_upstream_output_invalidates_downstream_but_not_further_upstream(code: UserCode) -> None:
    flow = load_flow(code)
    first = flow(scale=1)
    second = flow(scale=2)
    assert explanations(second) == {
        "load": hit("load", "flow-1"),
        "prepare": miss("parameter `scale` 1 → 2"),
        "train": miss("input `data` content changed"),
    }
    old, new = first.steps["train"].inputs["data"], second.steps["train"].inputs["data"]
    assert old.content_hash != new.content_hash
    assert second.steps["train"].cache_components["inputs"] == {"data": new.content_hash}


def test_recomputed_upstream_with_identical_content_lets_downstream_hit(code: UserCode) -> None:
    flow = load_flow(code)
    first = flow()
    second = flow.with_options(refresh_cache=["load"])()
    assert explanations(second) == {
        "load": miss("cache refresh requested"),
        "prepare": hit("prepare", "flow-1"),
        "train": hit("train", "flow-1"),
    }
    old, new = first.steps["load"].output, second.steps["load"].output
    assert new.id != old.id and new.content_hash == old.content_hash
    # prepare reused flow-1's result although its input is now the fresh artifact.
    assert second.steps["prepare"].inputs["data"].id == new.id


MODEL = """
class Model:
    def __init__(self, weights):
        self.weights = list(weights)

    def __eq__(self, other):
        return isinstance(other, Model) and other.weights == self.weights
"""

MATERIALIZER = """
import json

from pipeledger import Materializer

from ${p}_model import Model


class ModelMaterializer(Materializer):
    handled_types = (Model,)
    artifact_type = "Model"
    version = "$version"

    def save(self, value, fs, path):
        with fs.open(path + "/weights.json", "w") as f:
            json.dump(value.weights, f)
        return {}

    def load(self, fs, path, data_type):
        with fs.open(path + "/weights.json") as f:
            return Model(json.load(f))
"""

MODELLING = """
from typing import Annotated

from pipeledger import pipeline, step

from ${p}_model import Model


@step
def load() -> Annotated[list, "data"]:
    return [1.0, 2.0]


@step
def fit(data: list) -> Annotated[Model, "model"]:
    return Model([x / 2 for x in data])


@step
def score(model: Model) -> Annotated[float, "score"]:
    return sum(model.weights)


@pipeline
def modelling():
    score(fit(load()))
"""


def test_new_materializer_version_invalidates_the_step_producing_that_type(
    code: UserCode, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pipeledger.artifacts.materializers.registry._default", MaterializerRegistry())
    code.write("model", MODEL)
    code.write("materializer", MATERIALIZER, version="1")
    code.write("modelling", MODELLING)
    register_materializer(code.load("materializer").ModelMaterializer())
    modelling = code.load("modelling").modelling
    path = f"{code.name('materializer')}.ModelMaterializer"

    first = modelling()
    model = first.steps["fit"].output
    assert (model.materializer, model.materializer_version, model.type) == (path, "1", "Model")
    assert first.steps["fit"].cache_components["outputs"] == {"model": f"{path}@1"}
    assert explanations(modelling()) == {
        "load": hit("load", "modelling-1"),
        "fit": hit("fit", "modelling-1"),
        "score": hit("score", "modelling-1"),
    }

    code.write("materializer", MATERIALIZER, version="2")
    register_materializer(code.load("materializer").ModelMaterializer())
    third = modelling()
    assert explanations(third) == {
        "load": hit("load", "modelling-1"),
        "fit": miss("materializer of output `model` changed"),
        "score": hit("score", "modelling-1"),  # version 2 wrote the same bytes
    }
    fit = third.steps["fit"]
    assert fit.cache_components["outputs"] == {"model": f"{path}@2"}
    assert fit.output.materializer_version == "2"
    assert fit.output.read().weights == [0.5, 1.0]
    assert fit.output.content_hash == model.content_hash


def test_changing_cache_version_invalidates_only_that_step(code: UserCode) -> None:
    versioned = edit(FLOW, "@step\ndef train", '@step(cache_version="a")\ndef train')
    flow = load_flow(code, flow=versioned)
    assert flow().steps["train"].cache_components["cache_version"] == "a"

    write_flow(code, edit(versioned, '"a"', '"b"'))
    flow = reload_flow(code)
    second = flow()
    assert explanations(second) == {
        "load": hit("load", "flow-1"),
        "prepare": hit("prepare", "flow-1"),
        "train": miss('cache_version "a" → "b"'),
    }
    assert second.steps["train"].cache_components["cache_version"] == "b"
    assert second.steps["load"].cache_components["cache_version"] is None


# --- 2. reuse of the original artifacts ----------------------------------------------------------


def local_path(uri: str) -> str:
    return fsspec.core.url_to_fs(uri)[1]


def test_cached_steps_reuse_the_original_artifacts_and_metadata(code: UserCode, home: Path) -> None:
    flow = load_flow(code)
    first = flow()
    second = flow()
    for name in ("load", "prepare", "train"):
        original, cached = first.steps[name], second.steps[name]
        assert cached.is_cached and not original.is_cached
        assert cached.cached_from is not None and cached.cached_from.id == original.id
        assert original.cached_from is None
        assert cached.cache_key == original.cache_key
        assert cached.metadata == original.metadata
        (out_name,) = cached.outputs
        old, new = original.outputs[out_name], cached.outputs[out_name]
        assert (new.id, new.uri, new.content_hash) == (old.id, old.uri, old.content_hash)
        assert new.producer is not None and new.producer.id == original.id
        assert new.read() == old.read()
    assert second.steps["train"].metadata == {"loss": 0.9}
    assert second.steps["train"].output.read() == {"w": 0.2}
    # No copy: nothing was written for the cached run's steps.
    assert [p for p in home.rglob("*") if f"flow-1-{first.id}" in p.parts and p.is_file()]
    assert not [p for p in home.rglob("*") if f"flow-2-{second.id}" in p.parts and p.is_file()]


def test_a_deleted_original_artifact_makes_the_step_recompute_and_become_the_new_entry(
    code: UserCode,
) -> None:
    flow = load_flow(code)
    first = flow()
    shutil.rmtree(local_path(first.steps["load"].output.uri))

    second = flow()
    assert explanations(second) == {
        "load": miss("original artifact missing"),
        "prepare": hit("prepare", "flow-1"),  # the fresh output has the same content
        "train": hit("train", "flow-1"),
    }
    fresh = second.steps["load"]
    assert fresh.output.id != first.steps["load"].output.id
    assert fresh.output.read() == [1, 2, 3]

    third = flow()
    assert explanations(third)["load"] == hit("load", "flow-2")
    assert third.steps["load"].cached_from.id == fresh.id
    assert third.steps["load"].output.id == fresh.output.id


# --- 3. controls -------------------------------------------------------------------------------


@step
def source(n: int = 3) -> Annotated[list, "data"]:
    return list(range(1, n + 1))


@step(enable_cache=False)
def uncached(data: list) -> int:
    return len(data)


@step
def total(data: list) -> int:
    log_metadata(count=len(data))
    return sum(data)


@pipeline
def controls():
    data = source()
    uncached(data)
    total(data)


@pipeline(enable_cache=False)
def never_cached():
    total(source())


@pipeline
def alpha():
    total(source(n=3))


@pipeline
def beta():
    total(source(n=4))


@step(cache_expires_after=timedelta(milliseconds=20))
def short_lived() -> int:
    return 1


@step(cache_expires_after=timedelta(hours=1))
def long_lived() -> int:
    return 2


@pipeline
def expiring():
    short_lived()
    long_lived()


def test_cache_disabled_on_the_step_and_on_the_pipeline() -> None:
    controls()
    assert explanations(controls()) == {
        "source": hit("source", "controls-1"),
        "uncached": miss("cache disabled on the step"),
        "total": hit("total", "controls-1"),
    }
    never_cached()
    disabled = miss("cache disabled on the pipeline")
    assert explanations(never_cached()) == {"source": disabled, "total": disabled}


def test_run_level_enable_cache_decides_for_every_step() -> None:
    controls()
    off = miss("cache disabled for this run")
    assert explanations(controls.with_options(enable_cache=False)()) == {
        "source": off,
        "uncached": off,
        "total": off,
    }
    # True overrides the step's False...
    assert explanations(controls.with_options(enable_cache=True)()) == {
        "source": hit("source", "controls-2"),
        "uncached": hit("uncached", "controls-2"),
        "total": hit("total", "controls-2"),
    }
    # ...and the pipeline's False (whose runs still record entries).
    never_cached()
    assert explanations(never_cached.with_options(enable_cache=True)()) == {
        "source": hit("source", "never_cached-1"),
        "total": hit("total", "never_cached-1"),
    }
    assert never_cached.with_options(enable_cache=True).enable_cache is False


def test_refresh_all_recomputes_and_becomes_the_cache_entry() -> None:
    controls()
    refreshed = controls.with_options(refresh_cache=True)()
    assert explanations(refreshed) == {
        "source": miss("cache refresh requested"),
        "uncached": miss("cache disabled on the step"),
        "total": miss("cache refresh requested"),
    }
    after = controls()
    assert explanations(after) == {
        "source": hit("source", "controls-2"),
        "uncached": miss("cache disabled on the step"),
        "total": hit("total", "controls-2"),
    }
    for name in ("source", "total"):
        assert after.steps[name].cached_from.id == refreshed.steps[name].id
        assert after.steps[name].output.id == refreshed.steps[name].output.id


def test_refresh_named_steps_only() -> None:
    controls()
    assert explanations(controls.with_options(refresh_cache=["total"])()) == {
        "source": hit("source", "controls-1"),
        "uncached": miss("cache disabled on the step"),
        "total": miss("cache refresh requested"),
    }


def test_refresh_of_an_unknown_step_is_a_definition_error() -> None:
    controls()
    with pytest.raises(DefinitionError, match="refresh_cache names unknown step 'nope'"):
        controls.with_options(refresh_cache=["total", "nope"])()
    assert [r.name for r in Client().get_pipeline("controls").runs] == ["controls-1"]


def test_cache_expires_after() -> None:
    first = expiring()
    time.sleep(0.1)
    second = expiring()
    assert explanations(second) == {
        "short_lived": miss("expired"),
        "long_lived": hit("long_lived", "expiring-1"),
    }
    assert second.steps["short_lived"].config["cache_expires_after"] == 0.02
    # The recomputed result is a fresh entry, valid again for a while.
    assert second.steps["short_lived"].output.id != first.steps["short_lived"].output.id


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def test_cache_clear_invalidates_matching_entries_only() -> None:
    a1, _b1 = alpha(), beta()
    alpha()  # a cached run: the entry it used is alpha-1's

    assert invoke("cache", "clear", "--pipeline", "alpha", "--step", "total") == (
        0,
        "Cleared 1 cache entry of pipeline alpha of step total.\n",
        "",
    )
    a3 = alpha()
    cleared = miss("cache entry cleared with `pipeledger cache clear`")
    assert explanations(a3) == {"source": hit("source", "alpha-1"), "total": cleared}
    assert explanations(beta()) == {"source": hit("source", "beta-1"), "total": hit("total", "beta-1")}
    # Artifacts of cleared entries stay readable.
    assert a1.steps["total"].output.read() == 6
    assert a1.steps["total"].output.producer.id == a1.steps["total"].id

    assert invoke("cache", "clear", "--step", "source")[1] == "Cleared 2 cache entries of step source.\n"
    assert invoke("cache", "clear", "-p", "beta")[1] == "Cleared 1 cache entry of pipeline beta.\n"
    assert invoke("cache", "clear", "--yes")[1] == "Cleared 1 cache entry.\n"  # alpha-3's total
    assert invoke("cache", "clear", "--yes")[1] == "Cleared 0 cache entries.\n"
    code, _, err = invoke("cache", "clear", "--pipeline", "nope")
    assert code == 1 and "nope" in err

    assert explanations(alpha()) == {"source": cleared, "total": cleared}
    assert explanations(beta()) == {"source": cleared, "total": cleared}


def test_cache_clear_of_everything_asks_first() -> None:
    """Issue 14: `cache clear` without a filter cleared every entry of every pipeline without asking."""
    alpha(), beta()
    code, out, err = invoke("cache", "clear")  # no answer (not a terminal): nothing cleared
    assert code == 1 and "Clear all 4 cache entries, of every pipeline? [y/N]" in out and "Aborted" in err
    code, out, _ = invoke("cache", "clear", input="n\n")
    assert code == 1 and "Cleared" not in out
    assert len(Client().store.list_cache_entries(invalidated=False)) == 4
    assert explanations(alpha())["total"] == hit("total", "alpha-1")
    code, out, _ = invoke("cache", "clear", input="y\n")
    assert code == 0 and out.endswith("Cleared 4 cache entries.\n")
    assert invoke("cache", "clear") == (0, "No cache entry to clear.\n", "")
    assert invoke("cache", "clear", "-p", "alpha") == (0, "Cleared 0 cache entries of pipeline alpha.\n", "")


def test_cache_list_shows_entries_with_filters() -> None:
    a1, b1 = alpha(), beta()
    alpha()  # cache hits: no new entries
    code, out, _ = invoke("cache", "list")
    assert code == 0
    lines = [line for line in out.splitlines() if "alpha" in line or "beta" in line]
    assert len(lines) == 4
    for run in (a1, b1):
        for name, step_view in run.steps.items():
            row = next(line for line in lines if f" {name} " in line and f" {run.name} " in line)
            assert step_view.cache_key[:12] in row and step_view.cache_key[:13] not in row
            assert step_view.end_time.strftime("%Y-%m-%d %H:%M:%S") in row and "valid" in row
    assert invoke("cache", "clear", "-p", "alpha", "-s", "total")[0] == 0
    out = invoke("cache", "list", "--pipeline", "alpha")[1]
    assert "beta" not in out and out.count("alpha-1") == 2
    (row,) = [line for line in out.splitlines() if " total " in line]
    invalidated = Client().store.list_cache_entries(pipeline="alpha", step="total")[0].invalidated_at
    assert invalidated is not None and invalidated.strftime("%Y-%m-%d %H:%M:%S") in row
    out = invoke("cache", "list", "--state", "invalidated")[1]
    assert " total " in out and " source " not in out
    out = invoke("cache", "list", "--step", "source", "--state", "valid", "-n", "1")[1]
    assert out.count(" source ") == 1 and "beta-1" in out  # the newest
    assert invoke("cache", "list", "-p", "nope")[0] == 1
    assert invoke("cache", "list", "-s", "nope")[1] == "No cache entry matches.\n"


def test_run_show_cache_prints_each_steps_explanation() -> None:
    controls()
    run = controls()
    code, out, _ = invoke("run", "show", run.name, "--cache")
    assert code == 0
    lines = out.splitlines()
    assert "cache" in lines
    for name, text in explanations(run).items():
        assert f"  {name}: {text}" in lines
    assert "cache miss: cache disabled on the step" in out
    assert "cache:" not in invoke("run", "show", run.name)[1]
    assert "cache hit" not in invoke("run", "show", run.name)[1]


@step
def flagged(flags: list = [True]) -> int:  # noqa: B006
    return len(flags)


@pipeline
def flagging(flags: list = [True]):  # noqa: B006
    flagged(flags=flags)


def test_run_show_cache_prints_explanations_verbatim() -> None:
    flagging(flags=[True])
    run = flagging(flags=[False])
    assert run.steps["flagged"].cache_explanation == miss("parameter `flags` [true] → [false]")
    assert "  flagged: cache miss: parameter `flags` [true] → [false]" in invoke("run", "show", run.name, "--cache")[1]


# --- 4. the cache key --------------------------------------------------------------------------


def test_cache_key_components_are_stored_with_the_step_run(code: UserCode) -> None:
    flow = load_flow(code)
    first = flow()
    flow_module, helpers_module = code.name("flow"), code.name("helpers")
    for s in first.steps.values():
        components = s.cache_components
        assert set(components) == {"format", "code", "parameters", "inputs", "outputs", "cache_version"}
        assert components["format"] == "pipeledger-cache-key/1"
        assert components["parameters"] == s.parameters
        assert components["inputs"] == {n: a.content_hash for n, a in s.inputs.items()}
        assert components["outputs"] == {n: f"{a.materializer}@{a.materializer_version}" for n, a in s.outputs.items()}
        assert components["outputs"] == {"data" if s.name != "train" else "model": JSON_MATERIALIZER}
        assert components["cache_version"] is None
        assert s.entrypoint == f"{flow_module}.{s.name}" and s.entrypoint in components["code"]
        assert all(re.fullmatch(r"[0-9a-f]{64}", h) for h in components["code"].values())
        # The key is the sha256 of the components' canonical JSON (sorted keys, no spaces).
        canonical = json.dumps(components, sort_keys=True, separators=(",", ":"))
        assert s.cache_key == hashlib.sha256(canonical.encode()).hexdigest()

    prepare, train = first.steps["prepare"], first.steps["train"]
    assert set(prepare.cache_components["code"]) == {f"{flow_module}.prepare", f"{helpers_module}.normalize"}
    assert set(train.cache_components["code"]) == {f"{flow_module}.train"}  # log_metadata is not user code
    assert prepare.cache_components["parameters"] == {"scale": 1}
    assert train.cache_components["inputs"] == {"data": prepare.output.content_hash}
    assert first.steps["load"].cache_components["inputs"] == {}

    second = flow()
    for name, s in second.steps.items():
        assert s.cache_components == first.steps[name].cache_components


DETERMINISM_HELPERS = """
def scale(values, factor):
    return [v * factor for v in values]
"""

DETERMINISM_SCRIPT = """
import json
from typing import Annotated

from pipeledger import pipeline, step

from ${p}_det_helpers import scale


@step
def make(size: int = 3, options: dict = {"b": [1, 2], "a": {"y": 1, "x": 2}}) -> Annotated[list, "values"]:
    return list(range(size))


@step
def grow(values: list, factor: float = 1.5) -> Annotated[list, "values"]:
    return scale(values, factor)


@pipeline
def det():
    grow(make())


run = det()
print(json.dumps({s.name: [s.is_cached, s.cache_key] for s in run.steps.values()}))
"""


def test_cache_key_is_deterministic_across_processes(code: UserCode, home: Path) -> None:
    code.write("det_helpers", DETERMINISM_HELPERS)
    code.write("det_script", DETERMINISM_SCRIPT)
    script = code.root / f"{code.name('det_script')}.py"

    def run(hash_seed: str) -> dict[str, list[Any]]:
        env = {
            **os.environ,
            "PIPELEDGER_HOME": str(home),
            "PIPELEDGER_QUIET": "1",
            "PYTHONHASHSEED": hash_seed,
        }
        done = subprocess.run(
            [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    first, second = run("1"), run("2")
    assert [cached for cached, _ in first.values()] == [False, False]
    assert [cached for cached, _ in second.values()] == [True, True]
    assert {n: key for n, (_, key) in first.items()} == {n: key for n, (_, key) in second.items()}

    again = Client().get_run("det-2")
    assert explanations(again) == {"make": hit("make", "det-1"), "grow": hit("grow", "det-1")}
    assert set(again.steps["grow"].cache_components["code"]) == {
        f"{code.name('det_script')}.grow",  # the script by its file's name, not `__main__`
        f"{code.name('det_helpers')}.scale",
    }


# --- 5. the look-up query ----------------------------------------------------------------------

INDEX = "ix_step_runs_cache_key_status_end_time"


@pytest.mark.parametrize("expiring_entries", [False, True], ids=["plain", "not_before"])
def test_cache_look_up_is_one_indexed_select(expiring_entries: bool) -> None:
    run = controls()
    total_step = run.steps["total"]
    store = Client().store
    engine = store.db.engine
    not_before = total_step.end_time - timedelta(minutes=1) if expiring_entries else None

    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", capture)
    try:
        found = store.find_cached_step(total_step.cache_key, not_before=not_before)
    finally:
        event.remove(engine, "before_cursor_execute", capture)

    assert found is not None and found.step_run.id == total_step.id
    assert {n: a.id for n, a in found.outputs.items()} == {"output": total_step.output.id}
    queries = [(s, p) for s, p in statements if not s.strip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK"))]
    assert len(queries) == 1, statements
    statement, parameters = queries[0]
    assert statement.lstrip().upper().startswith("SELECT")

    with engine.connect() as conn:
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    details = [str(row[-1]) for row in plan]
    print(f"\nEXPLAIN QUERY PLAN ({'not_before' if expiring_entries else 'plain'}):")
    for row in plan:
        print(f"  {tuple(row)}")
    assert any(f"USING INDEX {INDEX}" in d or f"USING COVERING INDEX {INDEX}" in d for d in details), details
    assert not any(d.startswith("SCAN step_runs") for d in details), details

    assert store.find_cached_step("0" * 64, not_before=not_before) is None
