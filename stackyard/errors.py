"""One exception tree for everything an operator can get wrong.

The CLI catches :class:`StackyardError` and prints its message on one line with
a non-zero exit; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class StackyardError(Exception):
    """Root of every error stackyard reports to an operator."""


class ConfigError(StackyardError, ValueError):
    """A configuration file or option is wrong (the message names file and key)."""


class TemplateError(StackyardError):
    """A Dockerfile or config template failed to render."""


class ImageNotFoundError(StackyardError, LookupError):
    """An image name given by the operator matches nothing."""


class GraphError(StackyardError):
    """The image tree is inconsistent: a missing parent or a dependency cycle."""


class EngineError(StackyardError):
    """The container engine refused or failed an operation."""


class MirrorError(StackyardError):
    """A package mirror or proxy cannot be reached."""


class DeployError(StackyardError):
    """A deploy step failed (the message names host, service and step)."""


class TestbedError(StackyardError):
    """The multi-node test bed could not be created, changed or removed."""

    __test__ = False  # not a pytest class, despite the name
