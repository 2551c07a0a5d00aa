"""The container engine adapter, for everything that runs on the deploy host.

The implementation is :mod:`stackyard.agent.engine`: the agent runs on remote
hosts without the rest of stackyard, so the one adapter lives there and the
rest of stackyard imports it from here. No other module imports the docker SDK
(an import-linter contract checks it).
"""

from __future__ import annotations

from stackyard.agent.engine import SUPPORTED_ENGINES, ContainerState, CreateRequest, Engine, ImageInfo

__all__ = ["SUPPORTED_ENGINES", "ContainerState", "CreateRequest", "Engine", "ImageInfo", "connect"]


def connect(kind: str = "docker", timeout: int = 600) -> Engine:
    """The local engine (or DOCKER_HOST's), checked to answer; EngineError otherwise."""
    return Engine.connect(kind, timeout)
