"""state.json: identity and keys survive, 0600, damaged files are named."""

from __future__ import annotations

import itertools
import stat

import pytest

from stackyard.cephaio import plan as P
from stackyard.cephaio import state as S
from stackyard.errors import ConfigError


def counter_random():
    counter = itertools.count(1)
    return lambda n: bytes([next(counter) % 256]) * n


def test_new_secrets_are_uuid4s_from_the_random_source():
    s = S.new_secrets(counter_random())
    assert s.fsid == "01010101-0101-4101-8101-010101010101"
    assert s.osd_uuid.startswith("02020202-") and s.keys == {}


def test_add_keys_makes_only_the_missing_ones():
    s = P.Secrets(fsid="f", osd_uuid="u", keys={"mon.": "kept"})
    made = S.add_keys(s, ["mon.", "client.admin", "osd.0"], created=5, random=counter_random())
    assert made == ["client.admin", "osd.0"] and s.keys["mon."] == "kept"
    assert s.keys["client.admin"] == P.cephx_key(b"\x01" * 16, 5)


def test_save_and_load_round_trip_with_mode_0600(tmp_path):
    path = tmp_path / "ceph-aio" / "state.json"
    st = S.State(secrets=P.Secrets("f", "u", {"client.admin": "k"}), settings={"mon_port": 3300},
                 users=["client.glance"], pools=["images"], files={"/x": "d"})
    S.save(path, st)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = S.load(path)
    assert again == st
    assert S.load(tmp_path / "none.json") is None


@pytest.mark.parametrize("text", ["{not json", '{"version": 9}', '{"version": 1, "fsid": "f"}', "[]"])
def test_a_damaged_state_is_an_error_naming_the_file(tmp_path, text):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=str(path)):
        S.load(path)
