"""Integrations with other systems: code that deploys or drives something outside pipeledger.

A store flavor that needs such a system stays a thin adapter in ``metadata_store/flavors/``
and imports its integration from here; integrations import ``stack`` and ``exceptions``,
never a store implementation. Optional client libraries are imported only when used.
"""
