"""nova-libvirt's qemu hook: a restarted guest's taps get a new OpenFlow port, a first start
is left alone (run here with a fake ovs-vsctl; tests/e2e/test_cloud.py soft-reboots a server)."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from tests.unit.scriptload import IMAGES, load_script

HOOK = IMAGES / "nova-libvirt" / "libvirt-qemu-hook"

DOMAIN_XML = """<domain type='qemu'><name>instance-0000001a</name><devices>
  <disk type='network'><target dev='vda' bus='virtio'/></disk>
  <interface type='ethernet'><mac address='fa:16:3e:00:00:01'/><target dev='tap17f85f9a-56'/></interface>
  <interface type='bridge'><source bridge='br-int'/><target dev='tapaaaabbbb-cc'/></interface>
  <interface type='vhostuser'><target dev='vhu1'/></interface>
  <interface type='ethernet'><target dev='../../etc/x'/></interface>
</devices></domain>"""


@pytest.fixture()
def hook():
    return load_script(HOOK)


def test_interface_devices_are_the_taps_with_valid_names(hook) -> None:
    assert hook.interface_devices(DOMAIN_XML) == ["tap17f85f9a-56", "tapaaaabbbb-cc"]
    assert hook.interface_devices("not xml") == []


def test_next_ofport_is_above_every_number_in_use(hook) -> None:
    assert hook.next_ofport(hook.parse_numbers("61\n[]\n\n4\n200\n-1\n")) == 201
    assert hook.next_ofport([]) == 1
    assert hook.next_ofport([1, 2, hook.MAX_OFPORT]) == 3  # at the top: the lowest free number


@pytest.fixture()
def fake_vsctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ovs-vsctl that knows tap17f85f9a-56 (ofport 61) and records its calls."""
    calls = tmp_path / "calls"
    script = tmp_path / "bin" / "ovs-vsctl"
    script.parent.mkdir()
    script.write_text(f"""#!/bin/sh
echo "$*" >> {calls}
case "$*" in
  *"find Interface name=tap17f85f9a-56"*) echo 6f2c0a4e-0000-0000-0000-000000000001 ;;
  *"find Interface"*) ;;
  *"list Interface"*) printf '61\\n[]\\n4\\n[]\\n' ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{script.parent}{os.pathsep}{os.environ['PATH']}")
    return calls


def test_restart_gets_a_new_ofport_first_start_does_not(hook, fake_vsctl: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hook, "MARK_DIR", str(tmp_path / "marks"))
    argv = ["qemu", "instance-0000001a", "started", "begin", "-"]
    assert hook.main(argv, io.StringIO(DOMAIN_XML)) == 0
    assert not fake_vsctl.exists()  # a first start: os-vif has just added the port
    assert hook.main(["qemu", "instance-0000001a", "stopped", "end", "-"], io.StringIO(DOMAIN_XML)) == 0
    assert hook.main(argv, io.StringIO(DOMAIN_XML)) == 0
    calls = fake_vsctl.read_text().splitlines()
    sets = [c for c in calls if " set Interface " in c]
    assert sets == ["--timeout=5 --db=unix:/run/openvswitch/db.sock --no-wait set Interface tap17f85f9a-56 "
                    "ofport_request=62"]  # the one tap OVS knows, above the ports in use
    fake_vsctl.unlink()
    assert hook.main(argv, io.StringIO(DOMAIN_XML)) == 0  # the mark is used once
    assert not fake_vsctl.exists()
    assert hook.main(["qemu", "../escape", "stopped", "end", "-"], io.StringIO("")) == 0
    assert not (tmp_path / "escape").exists() and os.listdir(tmp_path / "marks") == []
