"""One exception tree for everything an operator can get wrong.

The CLI catches :class:`StackyardError` and prints its message on one line with
a non-zero exit; anything else is a bug and keeps its traceback. The root and
the errors raised on target hosts are defined in :mod:`stackyard.agent.errors`
(the agent cannot import this module) and re-exported here.
"""

from __future__ import annotations

from stackyard.agent.errors import DeployError, EngineError, StackyardError

__all__ = [
    "StackyardError", "ConfigError", "TemplateError", "ImageNotFoundError", "GraphError", "EngineError",
    "MirrorError", "DeployError", "TestbedError",
]


class ConfigError(StackyardError, ValueError):
    """A configuration file or option is wrong (the message names file and key)."""


class TemplateError(StackyardError):
    """A Dockerfile or config template failed to render."""


class ImageNotFoundError(StackyardError, LookupError):
    """An image name given by the operator matches nothing."""


class GraphError(StackyardError):
    """The image tree is inconsistent: a missing parent or a dependency cycle."""


class MirrorError(StackyardError):
    """A package mirror or proxy cannot be reached."""


class TestbedError(StackyardError):
    """The multi-node test bed could not be created, changed or removed."""

    __test__ = False  # not a pytest class, despite the name
