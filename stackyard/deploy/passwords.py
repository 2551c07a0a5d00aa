"""passwords.yml: generate, merge on upgrade, and load with a useful error.

Key names are kolla-ansible's, so an existing ``/etc/kolla/passwords.yml``
works unchanged and ``stackyard genpwd`` can fill in a file kolla created.

Two rules shape everything here:

* an existing non-empty value is never replaced: regenerating the MariaDB root
  password on an existing cloud would lock the deployer out of its own data;
* the file is always written atomically with mode 0600: a crash mid-write
  must not leave a truncated file, and secrets must not be world-readable even
  if the operator's file used to be.
"""

from __future__ import annotations

import base64
import os
import secrets
import string
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from stackyard.deploy import pwdrules, services
from stackyard.deploy.services.base import Password, PasswordKind, Service
from stackyard.errors import ConfigError
from stackyard.yamlfile import parse_yaml

#: Letters and digits only: URL-safe, and needs no quoting in YAML, INI,
#: shell or a ``mysql+pymysql://user:password@host`` URL.
PASSWORD_ALPHABET = string.ascii_letters + string.digits
PASSWORD_LENGTH = 40  # ~238 bits of entropy
#: keys whose service takes exactly 32 characters (Heat refuses to start otherwise)
KEY32_LENGTH = 32
#: an HMAC-MD5 key is a digest's size: 16 bytes, 32 hex digits
HEX_BYTES = 16
#: a bcrypt salt is 22 characters of bcrypt's base64 alphabet
BCRYPT_ALPHABET = "./" + string.ascii_letters + string.digits
BCRYPT_SALT_LENGTH = 22


def password_keys() -> dict[str, Password]:
    """Every password key the services declare (genpwd fills all of them, so
    enabling a service later needs no second genpwd run)."""
    return services.passwords()


def required_passwords(enabled_services: Iterable[Service]) -> set[str]:
    """The password keys the given services need (services without any add none)."""
    return services.required_passwords(enabled_services)


def ssh_key_pair() -> dict[str, str]:
    """A 4096-bit RSA key pair as kolla-ansible stores it: PKCS#8 PEM private key,
    OpenSSH public key."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=4096)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                           serialization.PublicFormat.OpenSSH).decode()
    return {"private_key": private, "public_key": public}


def _random_text(alphabet: str, length: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def generate_password(key: str, kind: PasswordKind = PasswordKind.PLAIN) -> Any:
    """A fresh random value of ``kind`` for ``key`` (cryptographic ``secrets``);
    ``None`` for ``BLANK``, the operator's to set."""
    if kind == PasswordKind.BLANK:
        return None
    if kind == PasswordKind.UUID:
        return str(uuid.UUID(bytes=secrets.token_bytes(16), version=4))
    if kind == PasswordKind.SSH_KEY:
        return ssh_key_pair()
    if kind == PasswordKind.FERNET:
        return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
    if kind == PasswordKind.HEX:
        return secrets.token_hex(HEX_BYTES)
    if kind == PasswordKind.BCRYPT_SALT:
        return _random_text(BCRYPT_ALPHABET, BCRYPT_SALT_LENGTH)
    alphabet = string.ascii_letters if kind == PasswordKind.LETTERS else PASSWORD_ALPHABET
    length = KEY32_LENGTH if kind == PasswordKind.KEY32 else PASSWORD_LENGTH
    return _random_text(alphabet, length)


def _read(path: Path) -> dict[str, Any]:
    """Load a passwords file as a mapping; an empty file is an empty mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    data = parse_yaml(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of key: value, "
                          f"got {type(data).__name__}")
    return data


def _write(path: Path, data: Mapping[str, Any]) -> None:
    """Write ``data`` to ``path`` atomically with mode 0600.

    The temporary file is created 0600 in the same directory (so the rename
    is atomic and the secrets are never readable by others, not even
    briefly), fsynced, then renamed over the target.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "---\n" + yaml.safe_dump(dict(data), default_flow_style=False, sort_keys=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    os.chmod(path, 0o600)


def genpwd(path: Path, keys: Mapping[str, Password] | None = None) -> list[str]:
    """Create or complete ``path``; return the keys that got a new value (no values).

    Fills every empty key of the file (kolla-ansible's file lists every
    service it can deploy) and every key of ``keys`` (default: what stackyard's
    services declare), each with its kind (:mod:`stackyard.deploy.pwdrules`),
    so a file made by ``kolla-genpwd`` only gains stackyard's own keys.
    Existing values are never replaced; keys of kind ``BLANK`` stay empty.
    The file is rewritten with mode 0600 even when nothing was generated,
    which also tightens a file that was left world-readable.
    """
    path = Path(path)
    try:
        data = _read(path)
    except FileNotFoundError:
        data = {}
    todo = pwdrules.keys_to_fill(data, password_keys() if keys is None else keys)
    for key, kind in todo.items():
        data[key] = generate_password(key, kind)
    _write(path, data)
    return list(todo)


def mergepwd(old_path: Path, new_path: Path, final_path: Path, clean: bool = False) -> None:
    """Merge an upgraded release's passwords file with the cloud's current one,
    as ``kolla-mergepwd`` does (same inputs, same resulting keys and values).

    Every key of the old file keeps its old (in-use) value, even an empty
    one; keys only in the new file keep the new value (usually empty, for
    genpwd to fill). With ``clean=True`` (kolla-ansible's ``--clean``) keys
    only in the old file are dropped. A key the new release renamed takes the
    old key's value (:data:`~stackyard.deploy.pwdrules.RENAMED_KEYS`). The
    result is written to ``final_path`` atomically with mode 0600 (it may be
    one of the inputs).
    """
    old_path, new_path, final_path = Path(old_path), Path(new_path), Path(final_path)
    files = {}
    for label, path in (("old", old_path), ("new", new_path)):
        try:
            files[label] = _read(path)
        except FileNotFoundError:
            raise ConfigError(f"{path}: {label} passwords file not found") from None
    old, new = files["old"], files["new"]
    merged = {**new, **pwdrules.carried_over(old, new)}
    for key, value in old.items():
        if key in new or not clean:
            merged[key] = value
    _write(final_path, merged)


def load_passwords(path: Path, enabled_services: Iterable[Service]) -> dict[str, Any]:
    """Load ``path`` and check every password the enabled services need is set.

    Returns the whole file as a dict. Raises :class:`ConfigError` telling the
    operator to run ``stackyard genpwd`` when the file is missing or a required
    key is missing or empty, and naming those keys, so the fix is one command.
    """
    path = Path(path)
    services = list(enabled_services)
    try:
        data = _read(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: passwords file not found; run `stackyard genpwd` "
                          f"to create it") from None
    required = required_passwords(services)
    kinds = password_keys()
    missing = sorted(key for key in required if pwdrules.is_unset(data.get(key), kinds[key].kind))
    if missing:
        raise ConfigError(f"{path}: missing or empty passwords: {', '.join(missing)}; "
                          f"run `stackyard genpwd` to fill them (existing values are kept)")
    wrong = sorted(key for key in required if not isinstance(data[key], dict if kinds[key].kind ==
                                                               PasswordKind.SSH_KEY else str))
    if wrong:
        raise ConfigError(f"{path}: passwords must be strings (quote them), SSH keys mappings of "
                          f"private_key and public_key: {', '.join(wrong)}")
    short = sorted(key for key in required if kinds[key].kind == PasswordKind.KEY32
                   and len(data[key]) != KEY32_LENGTH)
    if short:
        raise ConfigError(f"{path}: {', '.join(short)} must be exactly {KEY32_LENGTH} characters "
                          f"(got {', '.join(str(len(data[k])) for k in short)})")
    return data
