"""``stackyard build``: load settings, render, plan, then execute.

Everything before :func:`execute` is pure (no engine), so listing, dependency
output and ``--template-only`` work on a machine without Docker.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stackyard.engine import Engine
from stackyard.errors import EngineError
from stackyard.imagebuild import catalog
from stackyard.imagebuild.baseimage import check_mirror, ensure_base_image
from stackyard.imagebuild.catalog import RenderedImage
from stackyard.imagebuild.config import BuildConfig
from stackyard.imagebuild import sources, wheels
from stackyard.imagebuild.engine import BUILT, CACHED, FAILED, SKIPPED, Builder, ImageResult, summary
from stackyard.imagebuild.graph import ImageGraph
from stackyard.imagebuild.plan import ImagePlan, check_install_type, make_plan
from stackyard.imagebuild.select import select_images


@dataclass
class BuildSession:
    config: BuildConfig
    images: dict[str, RenderedImage]
    graph: ImageGraph
    selected: set[str]


def prepare(config: BuildConfig, patterns: list[str], profiles: list[str] | None = None) -> BuildSession:
    images = catalog.render_all(config)
    graph = ImageGraph.from_images(images)
    selected = select_images(
        graph, patterns, profiles=config.profiles, regex=config.regex,
        profile=profiles, skip_parents=config.skip_parents,
    )
    check_install_type(config, images, selected)
    return BuildSession(config, images, graph, selected)


#: the image that compiles wheels for source builds (images/openstack-builder)
WHEEL_BUILDER = "openstack-builder"


def write_templates(session: BuildSession, out_dir: Path) -> list[Path]:
    """``--template-only``: rendered Dockerfiles plus their context files, per image."""
    written: list[Path] = []
    for name in sorted(session.selected):
        img = session.images[name]
        d = out_dir / name
        d.mkdir(parents=True, exist_ok=True)
        (d / "Dockerfile").write_text(img.dockerfile)
        written.append(d / "Dockerfile")
        for rel, src in img.files.items():
            dest = d / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(src.read_bytes())
            dest.chmod(src.stat().st_mode & 0o777)
    return written


def list_dependencies(session: BuildSession, fmt: str) -> str:
    sel = session.selected
    if fmt == "json":
        return json.dumps(session.graph.as_tree(sel), indent=2, sort_keys=True)
    if fmt == "dot":
        return session.graph.as_dot(sel)
    return session.graph.as_text(sel)


def plans_for(session: BuildSession, external_ids: dict[str, str]) -> dict[str, ImagePlan]:
    return make_plan(session.config, session.images, session.graph, external_ids)


def execute(session: BuildSession, engine: Engine, progress: Any) -> dict[str, Any]:
    """Make the base image if needed, check the mirror, fill the wheel cache (source builds), then build."""
    config = session.config
    selected = set(session.selected)
    needs_wheels = config.install_type == "source" and any(
        session.images[n].pip_requirements or session.images[n].local_projects for n in selected)
    if needs_wheels:
        selected |= {WHEEL_BUILDER} | set(session.graph.ancestors(WHEEL_BUILDER))
    external_ids: dict[str, str] = {}
    externals = {ref for n in selected for ref in session.images[n].external}
    for ref in sorted(externals):
        if ref == config.base_ref:
            external_ids[ref] = ensure_base_image(engine, config, log=lambda m: progress.event("base", "info", m))
        else:
            external_ids[ref] = _external_image(engine, ref)
    plans = plans_for(session, external_ids)
    builder = Builder(engine, config, plans, session.graph, session.selected, progress)
    pending = builder.needs_build()
    # only reach for the mirror when something will really be built
    if pending and not config.skip_existing:
        check_mirror(config.apt_mirror, config.base_tag, config.apt_proxy)
    results: dict[str, Any] = {}
    cache = wheels.WheelCache(config.work_dir, config.openstack_release)
    if needs_wheels and any(session.images[n].pip_requirements or session.images[n].local_projects
                            for n in pending):
        # the wheels every selected source image installs: from the cache when it has
        # them all (a stamp per requirement set), else made by the builder image
        # (cached like any image) first; then the images, reading the cache on loopback
        srcs = sources.resolve(config.openstack_release, config.sources)
        locals_ = {p: srcs[p] for n in session.selected for p in session.images[n].local_projects}
        wanted = wheels.WheelSet(config.openstack_release, sources.constraints_file(config.openstack_release),
                                 [r for n in session.selected for r in session.images[n].pip_requirements],
                                 locals_)
        if not cache.stamp(wanted).exists():
            tools = {WHEEL_BUILDER} | set(session.graph.ancestors(WHEEL_BUILDER))
            results.update(Builder(engine, config, plans, session.graph, tools, progress).run())
            if results[WHEEL_BUILDER].status not in (BUILT, CACHED, SKIPPED):
                return summary(results, session.images, selected)
        try:
            if cache.ensure(engine, plans[WHEEL_BUILDER].ref, wanted, lambda m: progress.event("wheels", "info", m)):
                progress.event("wheels", "built", str(cache.dir))
        except wheels.WheelBuildError as exc:
            for name in sorted(pending):
                results[name] = ImageResult(name=name, status=FAILED, ref=plans[name].ref, hash=plans[name].hash,
                                            reason=str(exc))
            return summary(results, session.images, selected)
        builder.extra_args = {catalog.local_arg(p): f"{p}=={cache.local_version(p, s)}" for p, s in locals_.items()}
        with wheels.serve(cache.dir) as url:
            builder.extra_args["STACKYARD_WHEELS"] = url
            results.update(builder.run())
    else:
        results.update(builder.run())
    out = summary(results, session.images, selected)
    if config.install_type == "source":
        # every image with a virtualenv: it installed into one, or its parents did
        venv_images = [n for n in sorted(session.selected)
                       if any(session.images[m].pip_requirements
                              for m in (n, *session.graph.ancestors(n)))]
        out["installed"] = {
            n: wheels.installed_versions(engine, plans[n].ref, plans[n].hash, config.work_dir)
            for n in venv_images if results.get(n) and results[n].status in (BUILT, CACHED)}
    return out


def _external_image(engine: Engine, ref: str) -> str:
    """Engine ID of a FROM image that is not ours; pulled if missing.

    Its ID goes into the content hash of every image built on it, so a missing
    one is an error here, before anything is built.
    """
    image = engine.image(ref)
    if image is not None:
        return image.id
    try:
        return engine.pull(ref)
    except EngineError as exc:
        reason = str(exc).splitlines()[0]
        raise EngineError(f"base image {ref} is not present and cannot be pulled ({reason})") from None
