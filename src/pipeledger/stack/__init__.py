"""Stacks and their components."""

from pipeledger.stack.home import pipeledger_home
from pipeledger.stack.stack import Stack, active_stack, default_stack

__all__ = ["Stack", "active_stack", "default_stack", "pipeledger_home"]
