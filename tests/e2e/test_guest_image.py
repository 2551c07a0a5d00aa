"""End-to-end: build the guest from Debian packages and boot it under QEMU (TCG).

The guest's NIC is a tap on a bridge inside a network namespace this test creates;
dnsmasq serves DHCP there and a tiny HTTP server answers as 169.254.169.254.
Nothing leaves the namespace.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stackyard.guest import build_guest

pytestmark = pytest.mark.e2e

SUBNET = "10.77.0"
GATEWAY = f"{SUBNET}.1"
GUEST_MAC = "52:54:00:5a:17:01"
GUEST_IP = f"{SUBNET}.123"
METADATA_IP = "169.254.169.254"
HOSTNAME = "e2e-guest-1"
SSH_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE2eTestKeyForStackyardGuestImageE2e e2e@stackyard"
BANNER = re.compile(r"stackyard-guest: hostname=(\S+) address=(\S+)")
BOOT_TIMEOUT = 240


def sh(*cmd: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr.strip()}")
    return res


def ensure_packages(binaries: dict[str, str]) -> None:
    missing = sorted({pkg for binary, pkg in binaries.items() if shutil.which(binary) is None})
    if not missing:
        return
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    res = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing],
                         capture_output=True, text=True, env=env, timeout=1200)
    if res.returncode != 0:
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=900)
        res = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", *missing],
                             capture_output=True, text=True, env=env, timeout=1200)
    assert res.returncode == 0, f"apt-get install {' '.join(missing)}: {res.stderr[-2000:]}"


@pytest.fixture(scope="module")
def host_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces, tap devices)")
    ensure_packages({"qemu-system-x86_64": "qemu-system-x86", "dnsmasq": "dnsmasq-base", "ping": "iputils-ping",
                     "ssh": "openssh-client"})


@pytest.fixture(scope="module")
def artifacts(guest_work_dir: Path, host_tools: None):
    # the session's guest work dir (STACKYARD_GUEST_WORK_DIR or a tmp dir): `stackyard up`
    # in test_cloud may have built the same guest there already
    work = guest_work_dir
    t0 = time.monotonic()
    art = build_guest(work)
    print(f"guest build: {time.monotonic() - t0:.1f}s (reused={art.reused})")
    again = build_guest(work)  # same inputs: the cached output is reused
    assert again.reused and again.key == art.key and again.ramdisk == art.ramdisk
    return art


class Netns:
    """A namespace with a bridge (gateway + metadata address) and a tap for the guest."""

    def __init__(self, tmp: Path) -> None:
        self.name = f"sy-guest-{os.getpid()}"
        self.tmp = tmp
        self.procs: list[subprocess.Popen] = []

    def run(self, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.name, *cmd, **kw)

    def spawn(self, *cmd: str, log: str) -> subprocess.Popen:
        out = open(self.tmp / log, "wb")
        p = subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], stdout=out, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def up(self) -> "Netns":
        sh("ip", "netns", "add", self.name)
        self.run("ip", "link", "set", "lo", "up")
        self.run("ip", "link", "add", "br0", "type", "bridge")
        self.run("ip", "addr", "add", f"{GATEWAY}/24", "dev", "br0")
        self.run("ip", "addr", "add", f"{METADATA_IP}/32", "dev", "br0")
        self.run("ip", "link", "set", "br0", "up")
        self.run("ip", "tuntap", "add", "dev", "tap0", "mode", "tap")
        self.run("ip", "link", "set", "tap0", "master", "br0")
        self.run("ip", "link", "set", "tap0", "up")
        return self

    def down(self) -> None:
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)
        sh("ip", "netns", "del", self.name, check=False)  # takes br0 and tap0 with it


@pytest.fixture()
def netns(tmp_path: Path, host_tools: None):
    ns = Netns(tmp_path)
    try:
        yield ns.up()
    finally:
        ns.down()
        assert ns.name not in sh("ip", "netns", "list").stdout


def serve_dhcp(ns: Netns) -> None:
    ns.spawn("dnsmasq", "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--port=0",
             "--interface=br0", "--bind-interfaces", "--user=root", "--group=root",
             f"--dhcp-range={SUBNET}.100,{SUBNET}.150,255.255.255.0,1h", f"--dhcp-host={GUEST_MAC},{GUEST_IP}",
             f"--dhcp-option=option:router,{GATEWAY}", f"--dhcp-leasefile={ns.tmp / 'leases'}",
             "--log-dhcp", "--log-facility=-", log="dnsmasq.log")


def serve_metadata(ns: Netns, key: str = SSH_KEY) -> None:
    root = ns.tmp / "metadata"
    (root / "openstack/latest").mkdir(parents=True)
    (root / "latest/meta-data/public-keys/0").mkdir(parents=True)
    meta = {"uuid": "6f1c2a94-0000-4000-8000-000000000001", "name": HOSTNAME, "hostname": f"{HOSTNAME}.novalocal",
            "availability_zone": "nova", "launch_index": 0, "project_id": "e2e",
            "public_keys": {"e2e": key + "\n"}, "keys": [{"name": "e2e", "type": "ssh", "data": key}]}
    (root / "openstack/latest/meta_data.json").write_text(json.dumps(meta))
    (root / "latest/meta-data/hostname").write_text(f"{HOSTNAME}.novalocal")
    (root / "latest/meta-data/public-keys/0/openssh-key").write_text(key + "\n")
    ns.spawn(sys.executable, "-m", "http.server", "80", "--bind", METADATA_IP, "--directory", str(root),
             log="metadata.log")
    deadline = time.monotonic() + 20
    probe = f"import socket; socket.create_connection(('{METADATA_IP}', 80), 1)"
    while ns.run(sys.executable, "-c", probe, check=False).returncode != 0:
        assert time.monotonic() < deadline, (ns.tmp / "metadata.log").read_text()
        time.sleep(0.3)


def wait_for(path: Path, pattern: re.Pattern, timeout: float, proc: subprocess.Popen) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = path.read_text(errors="replace") if path.exists() else ""
        m = pattern.search(text)
        if m:
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.5)
    tail = path.read_text(errors="replace")[-3000:] if path.exists() else "(no console output)"
    raise AssertionError(f"{pattern.pattern!r} not on the console within {timeout}s; console tail:\n{tail}")


def test_guest_boots_gets_dhcp_metadata_and_answers_ping(artifacts, netns: Netns) -> None:
    serve_dhcp(netns)
    serve_metadata(netns)
    console = netns.tmp / "console.log"
    monitor = netns.tmp / "monitor.sock"
    t0 = time.monotonic()
    qemu = netns.spawn(
        "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-nographic", "-no-reboot",
        "-serial", f"file:{console}", "-monitor", f"unix:{monitor},server,nowait",
        "-kernel", str(artifacts.kernel), "-initrd", str(artifacts.ramdisk), "-append", "console=ttyS0",
        "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC}", log="qemu.log")

    m = wait_for(console, BANNER, BOOT_TIMEOUT, qemu)
    boot_s = time.monotonic() - t0
    print(f"guest banner after {boot_s:.1f}s (TCG): {m.group(0)}")
    (netns.tmp / "boot-seconds").write_text(f"{boot_s:.1f}\n")
    assert m.group(1) == HOSTNAME
    assert m.group(2) == f"{GUEST_IP}/24"
    text = console.read_text(errors="replace")
    assert "stackyard-guest: ssh keys=1" in text
    assert "stackyard-guest: sshd=dropbear port=22" in text  # dropbear found its libraries
    assert GUEST_MAC in (netns.tmp / "leases").read_text()

    ping = netns.run("ping", "-c", "3", "-W", "5", GUEST_IP, check=False, timeout=60)
    assert ping.returncode == 0, ping.stdout + ping.stderr

    # the ACPI power button (what Nova's soft "server stop" sends) powers the guest off
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(monitor))
        s.sendall(b"system_powerdown\n")
        try:
            qemu.wait(timeout=90)
        except subprocess.TimeoutExpired:
            raise AssertionError("guest ignored the ACPI power button:\n" + console.read_text()[-1500:]) from None
    assert "stackyard-guest: powering off" in console.read_text(errors="replace")


def ssh_key_pair(tmp: Path) -> tuple[Path, str]:
    """A fresh ed25519 key: (private key file, public key line)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    path = tmp / "id_ed25519"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return path, public.decode() + " e2e@stackyard"


#: what Tempest puts before every command it runs on a guest (tempest.conf [validation] ssh_shell_prologue)
TEMPEST_PROLOGUE = "set -eu -o pipefail; PATH=$PATH:/sbin:/usr/sbin;"


def monitor_command(monitor: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(monitor))
        s.settimeout(10)
        s.sendall(command.encode() + b"\n")
        time.sleep(1)
        try:
            return s.recv(65536).decode(errors="replace")
        except socket.timeout:
            return ""


def test_guest_keeps_its_disk_and_runs_what_tempest_runs(artifacts, netns: Netns) -> None:
    """Over SSH with the metadata key, as Tempest logs in: sudo, curl, lsblk, mkfs on a volume,
    the udhcpc lease renewed by its pid file, a hot-plugged NIC configured; the root disk
    (blank at first boot) keeps what was written across a hard reset."""
    key_file, public = ssh_key_pair(netns.tmp)
    serve_dhcp(netns)
    serve_metadata(netns, public)
    root_disk, volume = netns.tmp / "root.img", netns.tmp / "volume.img"
    for path, size in ((root_disk, 256), (volume, 64)):
        with open(path, "wb") as f:
            f.truncate(size << 20)
    console = netns.tmp / "console.log"
    monitor = netns.tmp / "monitor.sock"
    netns.run("ip", "tuntap", "add", "dev", "tap1", "mode", "tap")
    netns.run("ip", "link", "set", "tap1", "master", "br0")
    netns.run("ip", "link", "set", "tap1", "up")
    qemu = netns.spawn(
        "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-nographic",
        "-serial", f"file:{console}", "-monitor", f"unix:{monitor},server,nowait",
        "-kernel", str(artifacts.kernel), "-initrd", str(artifacts.ramdisk), "-append", "console=ttyS0",
        "-drive", f"file={root_disk},if=virtio,format=raw", "-drive", f"file={volume},if=virtio,format=raw",
        "-netdev", "tap,id=n0,ifname=tap0,script=no,downscript=no",
        "-device", f"virtio-net-pci,netdev=n0,mac={GUEST_MAC}", log="qemu.log")

    def ssh(command: str, check: bool = True) -> subprocess.CompletedProcess:
        res = netns.run("ssh", "-i", str(key_file), "-o", "StrictHostKeyChecking=no", "-o",
                        "UserKnownHostsFile=/dev/null", "-o", "ConnectTimeout=10", "-o", "BatchMode=yes",
                        f"root@{GUEST_IP}", f"{TEMPEST_PROLOGUE} {command}", check=False, timeout=120)
        if check:
            assert res.returncode == 0, f"{command}: exit {res.returncode}: {res.stdout}{res.stderr}"
        return res

    def ssh_ready() -> None:
        deadline = time.monotonic() + 120
        while ssh("true", check=False).returncode != 0:
            assert time.monotonic() < deadline, console.read_text(errors="replace")[-3000:]
            time.sleep(2)

    try:
        wait_for(console, BANNER, BOOT_TIMEOUT, qemu)
        text = console.read_text(errors="replace")
        assert "stackyard-guest: formatting the root disk /dev/vda" in text, text[-2000:]
        assert "stackyard-guest: root=overlay on /dev/vda (persistent)" in text, text[-2000:]
        ssh_ready()

        assert ssh("sudo id -u").stdout.strip() == "0"
        assert ssh("sudo -u nobody id", check=False).returncode != 0  # root is the only user
        assert ssh(f"curl http://{METADATA_IP}/latest/meta-data/hostname").stdout == f"{HOSTNAME}.novalocal"
        disks = ssh("lsblk -lb --nodeps").stdout
        assert re.search(r"^vda .* disk", disks, re.M) and re.search(r"^vdb .* disk", disks, re.M), disks
        assert ssh("blkid -o value -s LABEL /dev/vda").stdout.strip() == "stackyard-root"
        # what Tempest's create_timestamp does on a volume
        ssh("sudo mkfs -t vfat /dev/vdb && sudo mkdir -p /mnt/vdb && sudo mount /dev/vdb /mnt/vdb"
            " && sudo sh -c \"date > /mnt/vdb/timestamp; sync\" && sudo umount /mnt/vdb")
        token = os.urandom(8).hex()
        ssh(f"echo {token} > /root/persisted && sudo sh -c 'date > /tmp/timestamp; sync'")
        stamp = ssh("cat /tmp/timestamp").stdout

        # Tempest's lease renewal: USR1 to the pid in /var/run/udhcpc.<nic>.pid, the address kept
        pid = ssh("cat /var/run/udhcpc.eth0.pid").stdout.strip()
        assert pid.isdigit(), pid
        ssh(f"sudo /bin/kill -USR1 {pid}")
        deadline = time.monotonic() + 30
        while (netns.tmp / "dnsmasq.log").read_text().count(f"DHCPACK(br0) {GUEST_IP}") < 2:
            assert time.monotonic() < deadline, (netns.tmp / "dnsmasq.log").read_text()[-1500:]
            time.sleep(1)
        assert f"{GUEST_IP}/24" in ssh("ip -o addr show dev eth0").stdout

        # a NIC plugged into the running guest, configured as Tempest does it
        monitor_command(monitor, "netdev_add tap,id=n1,ifname=tap1,script=no,downscript=no")
        monitor_command(monitor, "device_add virtio-net-pci,netdev=n1,id=nic1,mac=52:54:00:5a:17:02")
        deadline = time.monotonic() + 60
        while "52:54:00:5a:17:02" not in ssh("ip -o link").stdout:
            assert time.monotonic() < deadline, "the hot-plugged NIC never appeared in the guest"
            time.sleep(2)
        nic = ssh("ip -o link | awk '/52:54:00:5a:17:02/ {print $2}'").stdout.strip().rstrip(":")
        ssh(f"sudo ip addr add {SUBNET}.124/24 dev {nic} && sudo ip link set {nic} up")
        ping = netns.run("ping", "-c", "2", "-W", "5", f"{SUBNET}.124", check=False, timeout=60)
        assert ping.returncode == 0, ping.stdout + ping.stderr

        # a hard reset (Nova's hard reboot): the root disk is mounted again, not formatted again
        ssh("sync")
        before = console.read_text(errors="replace")
        monitor_command(monitor, "system_reset")
        deadline = time.monotonic() + BOOT_TIMEOUT
        while console.read_text(errors="replace").count("stackyard-guest: ready") < 2:
            assert time.monotonic() < deadline and qemu.poll() is None, console.read_text()[-3000:]
            time.sleep(1)
        after = console.read_text(errors="replace")[len(before):]
        assert "formatting the root disk" not in after and "root=overlay on /dev/vda" in after, after[-2000:]
        ssh_ready()
        assert ssh("cat /root/persisted").stdout.strip() == token
        assert ssh("cat /tmp/timestamp").stdout == stamp
        ssh("sudo mkdir -p /mnt/vdb && sudo mount /dev/vdb /mnt/vdb && test -s /mnt/vdb/timestamp"
            " && sudo umount /mnt/vdb")
    finally:
        if qemu.poll() is None:
            qemu.kill()
            qemu.wait(timeout=30)
