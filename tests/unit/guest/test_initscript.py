"""The guest's scripts: /init's two stages, the udhcpc hook, and the sudo and curl front-ends
(the last two run here with /bin/sh: they are plain POSIX shell)."""

import os
import subprocess
from pathlib import Path

from stackyard.guest.initscript import (
    BANNER_PREFIX, BLANK_DISK_MARKER, CURL, ROOT_LABEL, SUDO, blank_disk_header, render_blank_function, render_init,
    render_stage2, render_udhcpc_script,
)


def test_stage1_loads_modules_then_roots_an_overlay_on_the_root_disk() -> None:
    init = render_init(["kernel/drivers/virtio/virtio_ring.ko", "kernel/fs/overlayfs/overlay.ko"])
    assert init.startswith("#!/bin/sh\n") and "@" not in init  # every placeholder replaced
    for fs in ("proc proc /proc", "sysfs sysfs /sys", "devtmpfs devtmpfs /dev"):
        assert f"mount -t {fs}" in init
    assert "for m in kernel/drivers/virtio/virtio_ring.ko kernel/fs/overlayfs/overlay.ko; do" in init
    # formats only a blank disk, mounts only its own filesystem, else runs from RAM
    assert f"ROOT_LABEL={ROOT_LABEL}" in init and 'mkfs.ext4 -q -F -L "$ROOT_LABEL"' in init
    assert init.index("blank \"$ROOT\"") < init.index("mkfs.ext4")
    assert "lowerdir=/,upperdir=/media/root/upper,workdir=/media/root/work" in init
    assert 'exec chroot /newroot /sbin/stackyard-init "$DISK"' in init
    assert init.rstrip().endswith('exec /sbin/stackyard-init ""')


def test_stage2_banner_dhcp_metadata_keys_and_console() -> None:
    init = render_stage2()
    assert 'say "stackyard-guest: hostname=$HOSTNAME_MD address=$ADDRESS"' in init
    assert BANNER_PREFIX == "stackyard-guest:" and "@" not in init
    assert '-p "/var/run/udhcpc.$i.pid"' in init  # where Tempest's lease renewal reads the pid
    for path in ("/openstack/latest/meta_data.json", "/latest/meta-data/hostname",
                 "/latest/meta-data/public-keys/0/openssh-key", "/root/.ssh/authorized_keys"):
        assert path in init
    assert "wget -q -T" not in init  # segfaults in Debian's static busybox 1.35
    assert "/dev/ttyS0 /dev/tty0" in init and "while :; do" in init and "poweroff -f" in init
    assert "DEFAULT_HOSTNAME='a b'" in render_stage2(default_hostname="a b")


def test_udhcpc_hook_configures_lease_and_keeps_an_unchanged_address() -> None:
    hook = render_udhcpc_script()
    assert 'ip -4 addr add "$ip/$prefix"' in hook
    assert "staticroutes" in hook and "default via" in hook
    assert 'echo "$ip/$prefix" > "/run/udhcpc.$interface.address"' in hook
    renew = hook[hook.index("bound|renew)"):]
    assert renew.index('grep -q " $ip/$prefix "') < renew.index("addr flush")


def _script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_sudo_runs_as_root_and_refuses_other_users(tmp_path: Path) -> None:
    sudo = _script(tmp_path, "sudo", SUDO)
    run = lambda *a: subprocess.run(["/bin/sh", str(sudo), *a], capture_output=True, text=True)  # noqa: E731
    assert run("id", "-u").stdout.strip() == "0"
    assert run("-u", "root", "--", "echo", "a b").stdout == "a b\n"
    assert run("sh", "-c", 'echo "x" > /dev/null; echo done').stdout == "done\n"
    assert run("-i", "echo", "$((1+2))").stdout == "3\n"
    other = run("-u", "nobody", "id")
    assert other.returncode == 1 and "only root" in other.stderr
    assert run("-A", "id").returncode == 1
    assert run().returncode == 1


def test_curl_front_end_turns_curl_options_into_wget_ones(tmp_path: Path) -> None:
    curl = _script(tmp_path, "curl", CURL)
    _script(tmp_path, "wget", '#!/bin/sh\nfor a in "$@"; do printf "[%s]" "$a"; done\n')  # records its arguments
    env = dict(os.environ, PATH=f"{tmp_path}:{os.environ['PATH']}")
    run = lambda *a: subprocess.run(["/bin/sh", str(curl), *a], capture_output=True, text=True, env=env)  # noqa: E731
    assert run("http://169.254.169.254/latest/meta-data/public-ipv4").stdout == \
        "[-q][-O][-][http://169.254.169.254/latest/meta-data/public-ipv4]"
    assert run("-s", "-X", "POST", "-d", "pw 1", "http://m/p").stdout == "[-q][-O][-][--post-data][pw 1][http://m/p]"
    assert run("--data", "x", "-H", "A: b", "-o", "/tmp/f", "http://m/").stdout == \
        "[-q][-O][/tmp/f][--post-data][x][--header][A: b][http://m/]"
    refused = run("--compressed", "http://m/")
    assert refused.returncode == 2 and "not supported" in refused.stderr
    assert run("-X", "PUT", "http://m/").returncode == 2
    assert run("-s").returncode == 2


def _blank(path: Path) -> bool:
    script = render_blank_function() + 'blank "$1"\n'
    return subprocess.run(["/bin/sh", "-c", script, "blank", str(path)]).returncode == 0


def test_shipped_blank_disk_is_blank_to_the_guest_and_not_a_tar_archive(tmp_path: Path) -> None:
    import tarfile
    from stackyard.guest.build import write_blank_disk

    shipped = tmp_path / "disk.img"
    write_blank_disk(shipped, 1024 * 1024)
    assert shipped.stat().st_size == 1024 * 1024
    assert not tarfile.is_tarfile(shipped)  # Tempest's image upload takes a tar for a split image
    zeros = tmp_path / "zeros.img"  # a new, empty Cinder volume
    zeros.write_bytes(b"\0" * 200_000)
    assert tarfile.is_tarfile(zeros)  # why the shipped disk is not all zeros
    assert _blank(shipped) and _blank(zeros)
    data = tmp_path / "data.img"  # someone's data after the marker: never formatted
    data.write_bytes(blank_disk_header() + b"\0" * 100 + b"precious" + b"\0" * 1000)
    other = tmp_path / "other.img"
    other.write_bytes(b"\0" * 70_000 + b"beyond the first 64 KiB is not looked at")
    assert not _blank(data) and _blank(other)
    ext4 = tmp_path / "ext4.img"
    write_blank_disk(ext4, 8 * 1024 * 1024)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(ext4)], check=True)
    assert not _blank(ext4)  # a filesystem signature
    assert "@" not in render_blank_function() and BLANK_DISK_MARKER in render_init([])
