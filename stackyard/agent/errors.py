"""The root of stackyard's exception tree, and the errors the agent raises.

They live here, at the bottom of the package graph, because the agent runs on
hosts where the rest of stackyard is absent; :mod:`stackyard.errors` builds the
rest of the tree on top of these classes, so the CLI catches one root.
"""

from __future__ import annotations


class StackyardError(Exception):
    """Root of every error stackyard reports to an operator."""


class EngineError(StackyardError):
    """The container engine refused or failed an operation."""


class DeployError(StackyardError):
    """A deploy step failed (the message names host, service and step)."""
