"""The ``rest`` metadata store's wire protocol (``protocol.py``), shared with ``pipeledger server``."""
