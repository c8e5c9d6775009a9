"""The curated public API: ``pipeledger.__all__`` is exactly what users import."""

from __future__ import annotations

import pipeledger


def test_all_names_exist_and_are_sorted_groups() -> None:
    for name in pipeledger.__all__:
        assert hasattr(pipeledger, name), name
    assert len(set(pipeledger.__all__)) == len(pipeledger.__all__)


def test_no_unlisted_public_names() -> None:
    public = {n for n in dir(pipeledger) if not n.startswith("_")}  # the lazy names too, imported or not
    modules = {n for n in public if type(getattr(pipeledger, n)).__name__ == "module"}
    assert public - modules == set(pipeledger.__all__) - {"__version__"}


def test_every_error_is_a_pipeledger_error() -> None:
    from pipeledger import exceptions

    for name in dir(exceptions):
        obj = getattr(exceptions, name)
        if (
            isinstance(obj, type)
            and issubclass(obj, Exception)
            and not issubclass(obj, Warning)
            and obj.__module__ == exceptions.__name__
        ):
            assert issubclass(obj, exceptions.PipeledgerError), name
            assert name in (exceptions.__doc__ or ""), f"{name} is missing from the error tree drawing"


def test_rerun_is_started_from_the_execution_side() -> None:
    from pipeledger.reproduce import rerun

    assert pipeledger.rerun is rerun
