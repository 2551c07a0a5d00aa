#!/usr/bin/env python3
"""Benchmark ``stackyard build`` on the core image set, binary and source side by side; prints JSON.

For each install type (binary: Debian trixie's 2025.1 packages; source: the
newest tested release from PyPI), in one run on one machine:

1. untag the bench namespace's images (``debian:*`` base images are kept) and,
   for source, start from an empty wheel cache (a fresh work dir);
2. cold build: ``stackyard build --no-cache`` (ignores the hash cache and
   Docker's layer cache, so nothing left behind can make it look warm);
3. no-change rebuild: ``stackyard build`` again, every image must be ``cached``;
4. source only: untag the images again but keep the wheel cache, and build
   cold once more (``warm_wheels_cold_build_seconds``);
5. sizes: per image, its total size and the bytes its own layers add over its
   parent; the unique bytes on disk of the whole set (each layer counted once,
   read from the engine's layer store: ``<DockerRootDir>/image/<driver>/layerdb``),
   and keystone's layers over openstack-base.

``ratios`` compares them (the targets: source keystone <= 1.25 x binary keystone,
cold source <= 2 x cold binary, warm-wheel cold source <= 0.6 x the first).

Usage: ``python bench/build.py [--work-dir DIR] [--install-type T ...] [--skip-cold] [extra build args...]``
Run as root on the machine of the Docker engine (the layer store is read directly).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker

BASE_REF = "debian:trixie"
STACKYARD = str(Path(sys.executable).with_name("stackyard"))


def run_build(work_dir: str, extra: list[str]) -> tuple[float, dict[str, Any]]:
    summary_file = Path(work_dir) / "bench-summary.json"
    cmd = [STACKYARD, "build", "--work-dir", work_dir, "--summary-file", str(summary_file), *extra]
    start = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    elapsed = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return round(elapsed, 1), json.loads(summary_file.read_text())


def untag_ours(client: docker.DockerClient, namespace: str, tag_suffix: str = "") -> list[str]:
    removed = []
    for img in client.images.list(name=f"{namespace}/*"):
        for tag in img.tags:
            if tag.startswith(f"{namespace}/") and tag.endswith(tag_suffix):
                try:
                    client.images.remove(tag, noprune=False)
                except docker.errors.APIError:
                    # in use by a container: drop the tag only, the container keeps its image
                    client.images.remove(tag, force=True, noprune=True)
                removed.append(tag)
    return sorted(removed)


class LayerStore:
    """Layer sizes from the engine's layer database, keyed by chain ID."""

    def __init__(self, client: docker.DockerClient):
        info = client.info()
        self.root = Path(info["DockerRootDir"]) / "image" / info["Driver"] / "layerdb" / "sha256"
        if not self.root.is_dir():
            sys.exit(f"bench: layer store {self.root} not found (needs root on the engine's host)")

    @staticmethod
    def chain_ids(diff_ids: list[str]) -> list[str]:
        chain: list[str] = []
        for diff in diff_ids:
            if not chain:
                chain.append(diff)
            else:
                chain.append("sha256:" + hashlib.sha256(f"{chain[-1]} {diff}".encode()).hexdigest())
        return chain

    def size(self, chain_id: str) -> int:
        return int((self.root / chain_id.split(":", 1)[1] / "size").read_text())


def sizes(client: docker.DockerClient, summary: dict[str, Any], base_ref: str) -> dict[str, Any]:
    store = LayerStore(client)
    external = set(store.chain_ids(client.images.get(base_ref).attrs["RootFS"]["Layers"]))
    chains: dict[str, list[str]] = {}
    per_image: dict[str, Any] = {}
    images = {n: i for n, i in summary["images"].items() if n != "openstack-builder"}  # not a runtime image
    summary = dict(summary, images=images)
    for name, info in sorted(summary["images"].items()):
        attrs = client.images.get(info["ref"]).attrs
        chains[name] = store.chain_ids(attrs["RootFS"]["Layers"])
        layer_total = sum(store.size(c) for c in chains[name])
        per_image[name] = {"size": attrs["Size"], "layers": len(chains[name]), "layers_sum": layer_total}
    # bytes each image adds over its parents (base: over the external Debian image)
    ids = {name: client.images.get(info["ref"]).id for name, info in summary["images"].items()}
    by_id = {image_id: name for name, image_id in ids.items()}
    for name, info in per_image.items():
        labels = client.images.get(ids[name]).attrs["Config"].get("Labels") or {}
        parent_ids = [p for p in (labels.get("org.stackyard.parents") or "").split(",") if p]
        if parent_ids:
            parent_chain = {c for p in parent_ids if p in by_id for c in chains[by_id[p]]}
        else:
            parent_chain = external
        info["own_bytes"] = sum(store.size(c) for c in chains[name] if c not in parent_chain)
    unique = {c for chain in chains.values() for c in chain}
    ks_over = [c for c in chains["keystone"] if c not in set(chains["openstack-base"])]
    return {
        "images": per_image,
        "naive_sum_of_image_sizes": sum(i["size"] for i in per_image.values()),
        "unique_bytes_on_disk": sum(store.size(c) for c in unique),
        "unique_bytes_on_disk_without_debian_base": sum(store.size(c) for c in unique - external),
        "unique_layers": len(unique),
        "keystone_over_openstack_base_bytes": sum(store.size(c) for c in ks_over),
        "keystone_over_openstack_base_layers": len(ks_over),
        # cross-check: the layer store agrees with the engine's image sizes
        "layer_sizes_match_image_sizes": all(i["size"] == i["layers_sum"] for i in per_image.values()),
    }


def bench_type(client: docker.DockerClient, install_type: str, args: argparse.Namespace,
               extra: list[str]) -> dict[str, Any]:
    work = str(Path(args.work_dir) / install_type)
    build = ["--namespace", args.namespace, "--install-type", install_type, "--profile", "core", *extra]
    out: dict[str, Any] = {}
    if not args.skip_cold:
        shutil.rmtree(work, ignore_errors=True)  # source: an empty wheel cache
        out["untagged"] = len(untag_ours(client, args.namespace))
        cold, summary = run_build(work, ["--no-cache", *build])
        out["cold_build_seconds"] = cold
        out["cold_built"] = len(summary["built"])
    warm, summary = run_build(work, build)
    out["nochange_rebuild_seconds"] = warm
    out["nochange_cached"] = len(summary["cached"])
    out["nochange_built"] = summary["built"]
    if install_type == "source":
        out["installed"] = {name: {p: v[p] for p in ("keystone", "glance", "openstack-placement", "nova",
                                                     "neutron", "horizon") if p in v}
                            for name, v in summary.get("installed", {}).items()}
        if not args.skip_cold:
            untag_ours(client, args.namespace)
            again, summary = run_build(work, ["--no-cache", *build])
            out["warm_wheels_cold_build_seconds"] = again
    out.update(sizes(client, summary, args.base_ref))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work-dir", default="/tmp/stackyard-bench")
    ap.add_argument("--namespace", default="stackyard-bench")
    ap.add_argument("--install-type", dest="types", action="append", choices=["binary", "source"],
                    help="only this install type (repeatable; default both)")
    ap.add_argument("--skip-cold", action="store_true", help="only the no-change rebuild and sizes")
    ap.add_argument("--base-ref", default=BASE_REF, help="the external base image (default debian:trixie)")
    args, extra = ap.parse_known_args()
    client = docker.from_env(timeout=600)
    out: dict[str, Any] = {"engine": client.version().get("Version")}
    for install_type in args.types or ["binary", "source"]:
        out[install_type] = bench_type(client, install_type, args, extra)
    if "binary" in out and "source" in out:
        b, s = out["binary"], out["source"]
        ratios = {"keystone_size_source_over_binary":
                  round(s["images"]["keystone"]["size"] / b["images"]["keystone"]["size"], 3)}
        if not args.skip_cold:
            ratios["cold_source_over_cold_binary"] = round(s["cold_build_seconds"] / b["cold_build_seconds"], 3)
            ratios["warm_wheels_over_first_cold_source"] = round(
                s["warm_wheels_cold_build_seconds"] / s["cold_build_seconds"], 3)
        out["ratios"] = ratios
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
