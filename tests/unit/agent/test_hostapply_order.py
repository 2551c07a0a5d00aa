"""The host applier's order (deferred readiness checks last) and its waits' extra ``ready`` check."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from stackyard.agent.hostapply import UNCHANGED, TargetApplier
from stackyard.agent.model import HostPlan, Phase, Step, StepKind
from stackyard.errors import DeployError


class Recorder(TargetApplier):
    """Runs WAIT steps by name into ``ran`` instead of touching an engine."""

    def __init__(self, plan: HostPlan) -> None:
        super().__init__(None, plan, printer=lambda _m: None)
        self.ran: list[str] = []

    def handlers(self) -> dict[StepKind, Any]:
        def record(step: Step) -> tuple[str, str]:
            self.ran.append(step.name)
            return UNCHANGED, "ok"
        return {StepKind.WAIT: record, StepKind.AGENTS_WAIT: record}


def plan_of(*phases: Phase) -> HostPlan:
    return HostPlan(host="h1", config_root="/tmp/unused", phases=list(phases))


def test_deferred_steps_run_after_every_phase_in_their_order() -> None:
    plan = plan_of(
        Phase("neutron", [Step(StepKind.WAIT, "server"), Step(StepKind.AGENTS_WAIT, "agents", deferred=True)]),
        Phase("nova", [Step(StepKind.WAIT, "api"), Step(StepKind.WAIT, "hypervisor", deferred=True)]),
        Phase("horizon", [Step(StepKind.WAIT, "horizon")]),
    )
    applier = Recorder(plan)
    applier.run_steps()
    assert applier.ran == ["server", "api", "horizon", "agents", "hypervisor"]
    # the report records each deferred step under its own phase
    assert [(r.phase, r.name) for r in applier.report.results][-2:] == [("neutron", "agents"), ("nova", "hypervisor")]


def test_a_selection_still_picks_deferred_steps() -> None:
    plan = plan_of(Phase("neutron", [Step(StepKind.AGENTS_WAIT, "agents", deferred=True),
                                     Step(StepKind.WAIT, "server")]))
    applier = Recorder(plan)
    applier.run_steps(select={"neutron": ["agents_wait:agents"]})
    assert applier.ran == ["agents"]


def test_deferred_survives_the_wire() -> None:
    plan = plan_of(Phase("nova", [Step(StepKind.HYPERVISOR_WAIT, "h1", deferred=True), Step(StepKind.WAIT, "x")]))
    back = HostPlan.from_wire(plan.to_wire())
    assert [s.deferred for s in back.phases[0].steps] == [True, False]


class ReadyEngine:
    """A running container whose healthcheck passes; ``ready`` passes from its ``after``-th call."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.ready_calls = 0

    def container(self, name: str) -> Any:
        return SimpleNamespace(running=True, health="healthy", status="running", exit_code=0)

    def exec(self, name: str, command: list[str], **_kw: Any) -> tuple[int, str]:
        assert command == ["healthcheck_port", "neutron-server", "5672"]
        self.ready_calls += 1
        if self.ready_calls >= self.after:
            return 0, "neutron-server has a connection to port 5672"
        return 1, "no neutron-server connected to 5672"


def wait_step(timeout: float) -> Step:
    return Step(StepKind.WAIT, "neutron_server",
                params={"timeout": timeout, "ready": ["healthcheck_port", "neutron-server", "5672"]})


def test_a_wait_with_ready_waits_for_it_after_the_healthcheck(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stackyard.agent.hostapply.time.sleep", lambda _s: None)
    engine = ReadyEngine(after=3)
    applier = TargetApplier(engine, plan_of(), printer=lambda _m: None)  # type: ignore[arg-type]
    status, detail = applier.do_wait(wait_step(60))
    assert (status, engine.ready_calls) == (UNCHANGED, 3)
    assert "connection to port 5672" in detail


def test_a_ready_check_that_never_passes_fails_with_its_output(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(0, 10_000, 5))
    monkeypatch.setattr("stackyard.agent.hostapply.time.monotonic", lambda: float(next(clock)))
    monkeypatch.setattr("stackyard.agent.hostapply.time.sleep", lambda _s: None)
    applier = TargetApplier(ReadyEngine(after=10**9), plan_of(), printer=lambda _m: None)  # type: ignore[arg-type]
    with pytest.raises(DeployError, match="neutron_server not healthy after 30s: no neutron-server connected"):
        applier.do_wait(wait_step(30))
