"""The build plan: what to build, under which tag, and its content hash.

The hash of an image covers everything that decides its content: the rendered
Dockerfile, every file in its build context (path, content, executable bit), the
hashes of its parents (so a change ripples down), the IDs of external base
images and the build args. It contains no timestamp or random value, so a rerun
with no change computes the same hashes and nothing is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from stackyard.imagebuild.catalog import RenderedImage, file_digest
from stackyard.imagebuild.config import BuildConfig
from stackyard.imagebuild.graph import ImageGraph
from stackyard.errors import ConfigError

HASH_LABEL = "org.stackyard.hash"
NAME_LABEL = "org.stackyard.image"
#: engine IDs of the parents an image was built on (a cache hit must match them)
PARENT_LABEL = "org.stackyard.parents"
#: Bump when the hashing scheme changes, so old images never match by accident.
HASH_SCHEME = "stackyard-build-2"
#: Build args that only change how packages are fetched, not what is built.
TRANSPORT_ARGS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY")


@dataclass
class ImagePlan:
    name: str
    ref: str
    dockerfile: str
    files: dict[str, Path]
    parents: list[str]
    external: list[str]
    hash: str
    build_args: dict[str, str] = field(default_factory=dict)


def build_args(config: BuildConfig) -> dict[str, str]:
    args: dict[str, str] = {}
    if config.apt_proxy:
        args["http_proxy"] = config.apt_proxy
        args["HTTP_PROXY"] = config.apt_proxy
    return args


def content_hash(
    image: RenderedImage,
    parent_hashes: list[str],
    external_ids: list[str],
    args: dict[str, str],
    parent_refs: dict[str, str] | None = None,
) -> str:
    """The image's content hash. ``parent_refs`` (our parents' refs -> names) are
    masked in the Dockerfile: a parent counts by its own hash, not by the tag it
    has this time, so an image whose recipe does not change with the release (or
    the install type) is the same image under every tag."""
    h = hashlib.sha256()

    def put(kind: str, value: str) -> None:
        h.update(f"{kind}\0{len(value)}\0{value}\0".encode())

    dockerfile = image.dockerfile
    for ref, name in (parent_refs or {}).items():
        dockerfile = dockerfile.replace(ref, f"<parent {name}>")
    put("scheme", HASH_SCHEME)
    put("dockerfile", dockerfile)
    for rel, path in sorted(image.files.items()):
        executable = "x" if os.access(path, os.X_OK) else "-"
        put("file", f"{rel}\0{executable}\0{file_digest(path)}")
    for ph in parent_hashes:
        put("parent", ph)
    for eid in external_ids:
        put("external", eid)
    content_args = {k: v for k, v in sorted(args.items()) if k not in TRANSPORT_ARGS}
    put("args", json.dumps(content_args, sort_keys=True))
    return h.hexdigest()


def make_plan(
    config: BuildConfig,
    images: dict[str, RenderedImage],
    graph: ImageGraph,
    external_ids: dict[str, str],
) -> dict[str, ImagePlan]:
    """Plans for every image in dependency order.

    ``external_ids`` maps external FROM references (``debian:trixie``) to the
    engine's image ID; an unknown reference hashes as its name, which is still
    deterministic and lets ``--template-only`` work with no engine at all.
    """
    args = build_args(config)
    plans: dict[str, ImagePlan] = {}
    for name in graph.order():
        img = images[name]
        ph = [plans[p].hash for p in img.parents]
        ext = [external_ids.get(ref, ref) for ref in img.external]
        plans[name] = ImagePlan(
            name=name,
            ref=config.image_ref(name),
            dockerfile=img.dockerfile,
            files=img.files,
            parents=list(img.parents),
            external=list(img.external),
            hash=content_hash(img, ph, ext, args, {config.image_ref(p): p for p in img.parents}),
            build_args=args,
        )
    return plans


def check_install_type(config: BuildConfig, images: dict[str, RenderedImage], selected: set[str]) -> None:
    """Asking for ``source`` on an image that has no source recipe is an error."""
    if config.install_type != "source":
        return
    missing = sorted(n for n in selected if images[n].binary_only)
    if missing:
        raise ConfigError(
            "install_type 'source': no source recipe for image(s) "
            + ", ".join(missing)
            + " (use --install-type binary)"
        )
