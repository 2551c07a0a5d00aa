"""The engine adapter turns plain requests into Docker API calls and SDK errors into EngineErrors."""

from __future__ import annotations

from typing import Any

import docker.errors
import pytest

from stackyard.agent.engine import CreateRequest, Engine
from stackyard.agent.errors import EngineError


class FakeAPI:
    """Records the low-level calls the adapter makes (the public APIClient surface)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def create_host_config(self, **kw: Any) -> dict[str, Any]:
        self.calls.append(("host_config", kw))
        return {"HostConfigFrom": sorted(kw)}

    def create_container(self, **kw: Any) -> dict[str, str]:
        self.calls.append(("create", kw))
        return {"Id": "c0ffee"}

    def inspect_container(self, name: str) -> dict[str, Any]:
        if name == "gone":
            raise docker.errors.NotFound("no such container")
        if name == "broken":
            raise docker.errors.APIError("500 Server Error", explanation="engine on fire")
        return {"Id": "abc", "Name": f"/{name}", "Image": "sha256:1",
                "State": {"Status": "running", "ExitCode": 0, "Health": {"Status": "starting"}, "Pid": 42},
                "Config": {"Labels": {"a": "b"}}}

    def start(self, name: str) -> None:
        raise docker.errors.APIError("409 Conflict", explanation="cannot start: port in use")


def test_create_passes_only_the_settings_given_and_the_read_only_paths() -> None:
    api = FakeAPI()
    cid = Engine(api).create(CreateRequest(name="x", image="img", binds=["vol:/data", "/etc/a:/a:ro"],
                                           cap_add=["NET_ADMIN"], restart_policy="unless-stopped",
                                           readonly_paths=["/proc/bus"]))
    assert cid == "c0ffee"
    (_, hc), (_, create) = api.calls
    assert hc == {"binds": ["vol:/data", "/etc/a:/a:ro"], "network_mode": "host", "cap_add": ["NET_ADMIN"],
                  "restart_policy": {"Name": "unless-stopped"}}
    assert create["host_config"]["ReadonlyPaths"] == ["/proc/bus"]
    assert "MaskedPaths" not in create["host_config"]
    assert create["volumes"] == ["/data", "/a"] and create["name"] == "x"


def test_no_restart_policy_for_jobs() -> None:
    api = FakeAPI()
    Engine(api).create(CreateRequest(name="job", image="img", restart_policy="no"))
    assert "restart_policy" not in api.calls[0][1]


def test_container_state_and_missing_container() -> None:
    engine = Engine(FakeAPI())
    c = engine.container("keystone")
    assert c is not None and c.name == "keystone" and c.running and c.health == "starting" and c.pid == 42
    assert engine.container("gone") is None


def test_engine_errors_name_the_operation_and_the_reason() -> None:
    engine = Engine(FakeAPI())
    with pytest.raises(EngineError, match="inspect container broken"):
        engine.container("broken")
    with pytest.raises(EngineError, match="start container keystone: cannot start: port in use"):
        engine.start("keystone")


def test_unsupported_engine_is_refused_before_connecting() -> None:
    with pytest.raises(EngineError, match="podman.*not supported"):
        Engine.connect("podman")
