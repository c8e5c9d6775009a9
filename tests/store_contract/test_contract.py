"""Runs the contract tests of :mod:`pipeledger.testing` (until they become classes)."""

from pipeledger.testing.artifacts_and_io import *  # noqa: F403
from pipeledger.testing.cache import *  # noqa: F403
from pipeledger.testing.lineage import *  # noqa: F403
from pipeledger.testing.metadata import *  # noqa: F403
from pipeledger.testing.names import *  # noqa: F403
from pipeledger.testing.register_artifact import *  # noqa: F403
from pipeledger.testing.runs import *  # noqa: F403
from pipeledger.testing.step_runs import *  # noqa: F403
