"""What a source build installs: the release's constraints and each project's version.

A source image installs its OpenStack project from a release published on
PyPI (or from the operator's own sdist or checkout), always with the
release's upper constraints, into a virtualenv. Everything here is pure and
checked before any image is built, so a wrong release, a version outside the
series or a missing local path is one line naming the option.

Releases: ``YYYY.1`` and ``YYYY.2``. Each project's major version moves by one
per release, so the series of any release follows from one anchor release
(2025.1: keystone 27, nova 31 …); a new release needs only its constraints
file in ``releases/``. Within a series, the version is pinned (:data:`PINS`)
for the releases we have tested, else the newest of the series on PyPI is
taken (pip picks it within ``>=N,<N+1``) and the build summary records it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackyard import releases
from stackyard.errors import ConfigError

RELEASES_DIR = Path(__file__).resolve().parent / "releases"

#: the release the majors below belong to
ANCHOR = "2025.1"
#: PyPI distribution -> its major version in the anchor release
ANCHOR_MAJORS: dict[str, int] = {
    "keystone": 27,
    "glance": 30,
    "openstack-placement": 13,
    "nova": 31,
    "neutron": 26,
    "cinder": 26,
    "openstack-heat": 24,
}
#: projects whose version the release's upper constraints pin (horizon is in them)
CONSTRAINED_PROJECTS = ("horizon",)
#: release -> exact versions tested here (newest of each series when added)
PINS: dict[str, dict[str, str]] = {
    "2026.1": {
        "keystone": "29.1.0",
        "glance": "32.0.0",
        "openstack-placement": "15.0.0",
        "nova": "33.0.2",
        "neutron": "28.0.2",
        "cinder": "28.0.0",
        "openstack-heat": "26.0.2",
    },
}
#: every project a source image may install
PROJECTS = tuple(ANCHOR_MAJORS) + CONSTRAINED_PROJECTS
#: the release ``install_type: source`` builds unless told otherwise: the newest tested one
DEFAULT_RELEASE = max(PINS, key=lambda r: [int(x) for x in r.split(".")])


def release_index(release: str) -> int:
    """A number that grows by one per release (see :mod:`stackyard.releases`)."""
    try:
        return releases.release_index(release)
    except releases.ReleaseNameError as exc:
        raise ConfigError(f"openstack_release: {exc}") from None


def available_releases() -> list[str]:
    return sorted(p.name[len("upper-constraints-"):-len(".txt")] for p in RELEASES_DIR.glob("upper-constraints-*.txt"))


def constraints_file(release: str) -> Path:
    """The release's upper-constraints.txt; a release without one is refused."""
    release_index(release)
    path = RELEASES_DIR / f"upper-constraints-{release}.txt"
    if not path.is_file():
        raise ConfigError(f"openstack_release: no upper constraints for '{release}' (source builds know "
                          f"{', '.join(available_releases())}; add releases/upper-constraints-{release}.txt)")
    return path


def series_major(project: str, release: str) -> int:
    """The major version of ``project`` in ``release`` (keystone: 29 in 2026.1)."""
    return ANCHOR_MAJORS[project] + release_index(release) - release_index(ANCHOR)


def constrained_version(project: str, constraints: Path) -> str:
    for line in constraints.read_text().splitlines():
        name, sep, version = line.partition("===")
        if sep and name.strip().lower() == project:
            return version.split(";")[0].strip()
    raise ConfigError(f"{constraints}: {project} is not pinned; give sources.{project}.version")


@dataclass(frozen=True)
class ProjectSource:
    """Where one project comes from in a source build."""

    project: str
    #: "pypi": a release (exact ``version``, or the newest of ``series``); "local": ``location``
    kind: str
    version: str = ""
    series: int = 0
    location: str = ""
    #: content digest of a local source (so a change rebuilds the images that install it)
    digest: str = ""

    def requirement(self) -> str:
        """What pip is asked to install."""
        if self.kind == "local":
            return self.location
        if self.version:
            return f"{self.project}=={self.version}"
        return f"{self.project}>={self.series},<{self.series + 1}"

    def describe(self) -> str:
        """One line for the rendered Dockerfile: changes whenever what is installed changes."""
        if self.kind == "local":
            return f"{self.project} from {self.location} (sha256 {self.digest[:16]})"
        return self.requirement()


def local_digest(path: Path) -> str:
    """sha256 over a local sdist, or over every file of a checkout (paths and contents, .git excluded)."""
    h = hashlib.sha256()
    if path.is_file():
        h.update(path.read_bytes())
        return h.hexdigest()
    for f in sorted(p for p in path.rglob("*") if p.is_file() and ".git" not in p.relative_to(path).parts):
        h.update(str(f.relative_to(path)).encode() + b"\0")
        h.update(f.read_bytes())
    return h.hexdigest()


def resolve(release: str, overrides: dict[str, Any]) -> dict[str, ProjectSource]:
    """Every project's source for ``release``, with the operator's ``sources`` overrides applied.

    ``overrides``: project -> ``{"version": "29.0.2"}`` or ``{"type": "local",
    "location": "/path/to/sdist-or-checkout"}``. Errors name the key.
    """
    constraints = constraints_file(release)
    unknown = sorted(set(overrides) - set(PROJECTS))
    if unknown:
        raise ConfigError(f"sources: unknown project '{unknown[0]}' (known: {', '.join(PROJECTS)})")
    out: dict[str, ProjectSource] = {}
    for project in PROJECTS:
        spec = overrides.get(project) or {}
        if not isinstance(spec, dict):
            raise ConfigError(f"sources.{project}: must be a mapping (version: X, or type: local + location: PATH)")
        bad = sorted(set(spec) - {"type", "version", "location"})
        if bad:
            raise ConfigError(f"sources.{project}: unknown key '{bad[0]}' (accepted: type, version, location)")
        kind = str(spec.get("type", "pypi"))
        if kind not in ("pypi", "local"):
            raise ConfigError(f"sources.{project}.type: '{kind}' is not one of pypi, local")
        if kind == "local":
            location = spec.get("location")
            if not location:
                raise ConfigError(f"sources.{project}.location: required with type local (an sdist or a checkout)")
            path = Path(str(location)).expanduser()
            if not path.exists():
                raise ConfigError(f"sources.{project}.location: '{location}' does not exist")
            out[project] = ProjectSource(project, "local", location=str(path.resolve()),
                                         digest=local_digest(path))
            continue
        if project in CONSTRAINED_PROJECTS:
            pinned = constrained_version(project, constraints)
            version = str(spec.get("version") or pinned)
            if version != pinned:
                raise ConfigError(f"sources.{project}.version: '{version}' differs from {release}'s upper "
                                  f"constraints ({project}==={pinned})")
            out[project] = ProjectSource(project, "pypi", version=version)
            continue
        major = series_major(project, release)
        version = str(spec.get("version") or PINS.get(release, {}).get(project, ""))
        if version and not re.fullmatch(rf"{major}(\.\d+)+", version):
            raise ConfigError(f"sources.{project}.version: '{version}' is outside the {release} series "
                              f"({project} {major}.x)")
        out[project] = ProjectSource(project, "pypi", version=version, series=major)
    return out
