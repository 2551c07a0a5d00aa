from stackyard.guest.initscript import BANNER_PREFIX, render_init, render_udhcpc_script


def test_init_prints_grepable_banner_with_hostname_and_address() -> None:
    init = render_init(["kernel/drivers/net/virtio_net.ko"])
    assert init.startswith("#!/bin/sh\n")
    assert 'say "stackyard-guest: hostname=$HOSTNAME_MD address=$ADDRESS"' in init
    assert BANNER_PREFIX == "stackyard-guest:"
    assert "@" not in init.replace("e2e@", "")  # every placeholder replaced


def test_init_mounts_loads_modules_and_runs_dhcp() -> None:
    init = render_init(["kernel/drivers/virtio/virtio_ring.ko", "kernel/drivers/net/virtio_net.ko"])
    for fs in ("proc proc /proc", "sysfs sysfs /sys", "devtmpfs devtmpfs /dev"):
        assert f"mount -t {fs}" in init
    assert "for m in kernel/drivers/virtio/virtio_ring.ko kernel/drivers/net/virtio_net.ko; do" in init
    assert "udhcpc -i" in init and "-s /usr/share/udhcpc/default.script" in init


def test_init_reads_openstack_and_ec2_metadata_and_writes_keys() -> None:
    init = render_init([])
    assert "MD=http://169.254.169.254" in init
    assert "/openstack/latest/meta_data.json" in init
    assert "/latest/meta-data/hostname" in init
    assert "/latest/meta-data/public-keys/0/openssh-key" in init
    assert "/root/.ssh/authorized_keys" in init
    assert "wget -q -T" not in init  # segfaults in Debian's static busybox 1.35


def test_init_writes_to_serial_and_vga_console_and_keeps_running() -> None:
    init = render_init([])
    assert "/dev/ttyS0 /dev/tty0" in init
    assert "while :; do" in init
    assert "poweroff -f" in init


def test_default_hostname_is_shell_quoted() -> None:
    assert "DEFAULT_HOSTNAME='a b'" in render_init([], default_hostname="a b")
    assert "DEFAULT_HOSTNAME=plain-name" in render_init([], default_hostname="plain-name")


def test_udhcpc_hook_configures_lease_and_records_address() -> None:
    hook = render_udhcpc_script()
    assert 'ip -4 addr add "$ip/$prefix"' in hook
    assert "staticroutes" in hook and "default via" in hook
    assert 'echo "$ip/$prefix" > "/run/udhcpc.$interface.address"' in hook
