import argparse

import pytest

from stackyard.errors import StackyardError
from stackyard.commands import guest as cli  # the guest-image command moved out of stackyard.guest


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stackyard")
    cli.register(p.add_subparsers(dest="command"))
    return p


def test_register_adds_guest_image_with_its_flags() -> None:
    args = parser().parse_args(["guest-image", "--work-dir", "/w", "--name", "g", "--upload", "--cloud", "c"])
    assert args.func is cli.run
    assert (args.work_dir, args.name, args.upload, args.cloud) == ("/w", "g", True, "c")
    d = parser().parse_args(["guest-image"])
    assert (d.name, d.upload, d.cloud, d.os_cloud_config, d.kernel_package) == (
        "stackyard-guest", False, None, None, "linux-image-cloud-amd64")


def test_cloud_and_config_file_are_exclusive() -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["guest-image", "--cloud", "a", "--os-cloud-config", "/x.yaml"])


def test_missing_clouds_yaml_is_an_operator_error_before_building(tmp_path) -> None:
    args = parser().parse_args(["guest-image", "--work-dir", str(tmp_path), "--upload",
                                "--os-cloud-config", str(tmp_path / "none.yaml")])
    with pytest.raises(StackyardError, match="clouds.yaml not found"):
        args.func(args)
    assert list(tmp_path.iterdir()) == []
