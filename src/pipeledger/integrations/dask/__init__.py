"""The ``dask`` orchestrator: steps as tasks of a Dask cluster (``pip install 'pipeledger[dask]'``).

:mod:`.orchestrator` holds the flavor and the run loop, :mod:`.checks` what is refused before a
run starts. ``dask.distributed`` is imported only when a run uses the orchestrator.
"""
