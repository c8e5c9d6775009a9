"""Lineage graphs, their pictures, and OpenLineage export."""

from pipeledger.lineage.graph import LineageEdge, LineageGraph, LineageNode

__all__ = ["LineageEdge", "LineageGraph", "LineageNode"]
