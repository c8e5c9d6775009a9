"""ledger-bench: the metadata workload of ../shared/bench/WORKLOAD.md, for pipeledger, a raw
SQLite floor and Google's ML Metadata. Run with ``make bench`` (see RESULTS.md)."""
