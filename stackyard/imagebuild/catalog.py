"""Discover image folders and render their Dockerfile templates.

An image is a folder ``<docker-dir>/<name>/`` with a ``Dockerfile.j2``. Extra
``--docker-dir`` trees are layered over ours: a file in a later tree replaces the
file at the same relative path in an earlier one, and a new folder adds an image.
``macros.j2`` (and any other top-level ``*.j2``) is shared by every template.

Rendering is pure: variables in, text out. The parent of an image is read from
its rendered ``FROM`` lines, never declared by hand.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import jinja2

from stackyard.imagebuild import sources
from stackyard.imagebuild.config import BuildConfig
from stackyard.errors import ConfigError, TemplateError

#: Our own image tree, shipped next to the package.
BUILTIN_IMAGES_DIR = Path(__file__).resolve().parents[2] / "images"
#: Runtime-contract scripts copied into the base image's build context.
CONTAINER_DIR = Path(__file__).resolve().parents[1] / "container"

TEMPLATE_NAME = "Dockerfile.j2"
_EXTENDS_RE = re.compile(r"{%-?\s*extends\s+parent_template\s*-?%}")
_PIP_RE = re.compile(r"^# stackyard: pip (.*)$", re.MULTILINE)
_LOCAL_RE = re.compile(r"^# stackyard: local (\S+)", re.MULTILINE)
_SOURCE_ONLY = "# stackyard: source-only"
_FROM_RE = re.compile(r"^\s*FROM\s+(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?\s*$", re.IGNORECASE | re.MULTILINE)


@dataclass
class ImageSource:
    """Where one image's files come from (after layering docker dirs)."""

    name: str
    template: Path
    #: relative path in the build context -> file on disk
    files: dict[str, Path] = field(default_factory=dict)


@dataclass
class RenderedImage:
    """An image with its rendered Dockerfile and the files of its build context."""

    name: str
    dockerfile: str
    files: dict[str, Path]
    template: Path
    #: FROM references in order (stage aliases removed)
    from_refs: list[str]
    #: names of our images this one is built FROM
    parents: list[str]
    #: FROM references that are not ours (e.g. ``debian:trixie``)
    external: list[str]
    #: the template has no source recipe (``# stackyard: binary-only`` in source mode)
    binary_only: bool = False
    #: source builds: what the image installs from the wheel cache (``# stackyard: pip`` lines)
    pip_requirements: list[str] = field(default_factory=list)
    #: source builds: projects installed from the operator's local sdist or checkout
    local_projects: list[str] = field(default_factory=list)


def block_name(image: str) -> str:
    """Jinja block prefix for an image: ``openstack-base`` -> ``openstack_base``."""
    return image.replace("-", "_")


def image_dirs(config: BuildConfig) -> list[Path]:
    """Our tree first, then every ``--docker-dir`` in the order given."""
    dirs = [BUILTIN_IMAGES_DIR]
    for d in config.docker_dirs:
        p = Path(d).expanduser().resolve()
        if not p.is_dir():
            raise ConfigError(f"docker_dirs: '{d}' is not a directory")
        dirs.append(p)
    return dirs


def discover(dirs: list[Path], config: BuildConfig) -> dict[str, ImageSource]:
    """Find every image folder across layered trees (later trees win per file)."""
    images: dict[str, ImageSource] = {}
    for root in dirs:
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            files = {
                str(f.relative_to(folder)): f
                for f in sorted(folder.rglob("*"))
                if f.is_file() and "__pycache__" not in f.parts
            }
            if TEMPLATE_NAME not in files and folder.name not in images:
                continue
            src = images.setdefault(folder.name, ImageSource(folder.name, files.get(TEMPLATE_NAME, folder / TEMPLATE_NAME)))
            if TEMPLATE_NAME in files:
                src.template = files[TEMPLATE_NAME]
            for rel, path in files.items():
                if rel != TEMPLATE_NAME:
                    src.files[rel] = path
    for src in images.values():
        if config.install_type == "source" and "upper-constraints.txt" in src.template.read_text():
            # only where the recipe uses it: the others stay the same image for every release
            src.files.setdefault("upper-constraints.txt", sources.constraints_file(config.openstack_release))
        if src.name == "base":
            for script in sorted(CONTAINER_DIR.iterdir()):
                if script.is_file() and script.name not in ("__init__.py",) and not script.name.endswith(".pyc"):
                    src.files.setdefault(f"container/{script.name}", script)
    return images


def _packages_function(variables: dict[str, Any]) -> Callable[..., list[str]]:
    @jinja2.pass_context
    def customizable(context: jinja2.runtime.Context, default: list[str], var: str) -> list[str]:
        """Apply ``<var>_override`` / ``_append`` / ``_remove`` (Kolla-style) to a list."""

        def lookup(suffix: str) -> Any:
            key = f"{var}_{suffix}"
            value = context.get(key, variables.get(key))
            if value is not None and not isinstance(value, (list, tuple)):
                raise TemplateError(f"{key} must be a list, got {value!r}")
            return value

        result = list(lookup("override") or default)
        result += [p for p in (lookup("append") or []) if p not in result]
        removed = set(lookup("remove") or [])
        return [p for p in result if p not in removed]

    return customizable


class ServiceUsers(dict[str, dict[str, Any]]):
    """The ``users`` template variable: :attr:`BuildConfig.users`, strict on lookup.

    A plain dict under StrictUndefined would fail with "'dict object' has no
    attribute 'x'"; a user the templates ask for but the caller did not pass
    must instead say which user is missing (the render adds file and image).
    """

    def __missing__(self, name: str) -> dict[str, Any]:
        known = ", ".join(sorted(self)) or "none"
        raise TemplateError(f"service user '{name}' is not in the build's users table (known: {known})")


def local_arg(project: str) -> str:
    """The build argument carrying ``project``'s exact wheel version from a local source."""
    return "STACKYARD_LOCAL_" + project.upper().replace("-", "_").replace(".", "_")


def source_variables(config: BuildConfig) -> dict[str, dict[str, Any]]:
    """The ``sources`` template variable: per project, what a source image installs."""
    if config.install_type != "source":
        return {}
    return {p: {"requirement": s.requirement(), "local": s.kind == "local", "describe": s.describe(),
                "arg": local_arg(p)}
            for p, s in sources.resolve(config.openstack_release, config.sources).items()}


class Renderer:
    """Renders templates with StrictUndefined and the operator's overrides."""

    def __init__(self, config: BuildConfig, dirs: list[Path]):
        self.config = config
        # later docker dirs first so they can override macros.j2
        search = [str(d) for d in reversed(dirs)]
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(search),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,
        )
        self.variables = self._variables()
        self.env.globals.update(self.variables)
        self.env.globals["customizable"] = _packages_function(self.variables)
        self.env.globals["image_ref"] = config.image_ref
        #: override sources, each rewritten to extend its own parent variable
        self.overrides: list[tuple[Path, str]] = []
        for index, path in enumerate(config.template_overrides):
            p = Path(path).expanduser()
            try:
                text = p.read_text()
            except OSError as exc:
                raise ConfigError(f"template_overrides: cannot read '{path}': {exc.strerror}") from None
            text, count = _EXTENDS_RE.subn("{%% extends __stackyard_parent_%d %%}" % index, text, count=1)
            if not count:
                raise TemplateError(f"{p}:1: a template override must '{{% extends parent_template %}}'")
            self.overrides.append((p, text))

    def _variables(self) -> dict[str, Any]:
        c = self.config
        v: dict[str, Any] = {
            "base_image": c.base_image,
            "base_tag": c.base_tag,
            "base_distro": "debian",
            "distro_release": c.base_tag,
            "install_type": c.install_type,
            "openstack_release": c.openstack_release,
            "namespace": c.namespace,
            "registry": c.registry,
            "tag": c.tag,
            "image_prefix": c.image_prefix,
            "apt_mirror": c.apt_mirror.rstrip("/"),
            "apt_security_mirror": c.apt_security_mirror.rstrip("/"),
            # the caller's order is kept: it is the order base creates the users in
            "users": ServiceUsers({name: {**u, "groups": list(u.get("groups", []))}
                                   for name, u in c.users.items()}),
            "sources": source_variables(c),
        }
        v.update(c.template_vars)
        return v

    def render(self, src: ImageSource) -> str:
        """Render one image's Dockerfile, chained through every override file."""
        where = src.template
        try:
            tpl: jinja2.Template = self.env.get_template(self._loader_name(src))
            context: dict[str, Any] = {"image_name": src.name, "block_prefix": block_name(src.name)}
            for index, (path, text) in enumerate(self.overrides):
                where = path
                context[f"__stackyard_parent_{index}"] = tpl
                tpl = self.env.from_string(text)
            where = src.template
            return tpl.render(**context)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"{exc.filename or where}:{exc.lineno}: {exc.message}") from None
        except jinja2.UndefinedError as exc:
            raise TemplateError(f"{where}: {exc.message} (image '{src.name}')") from None
        except jinja2.TemplateError as exc:
            raise TemplateError(f"{where}: {exc} (image '{src.name}')") from None
        except TemplateError as exc:
            raise TemplateError(f"{where}: {exc} (image '{src.name}')") from None

    def _loader_name(self, src: ImageSource) -> str:
        for root in self.env.loader.searchpath:  # type: ignore[union-attr]
            try:
                return str(src.template.relative_to(root))
            except ValueError:
                continue
        raise TemplateError(f"{src.template}: not inside any docker dir")


def parse_from(dockerfile: str) -> list[str]:
    """FROM references of a Dockerfile, skipping references to earlier stages."""
    refs: list[str] = []
    stages: set[str] = set()
    for match in _FROM_RE.finditer(dockerfile):
        ref, alias = match.group(1), match.group(2)
        if ref not in stages:
            refs.append(ref)
        if alias:
            stages.add(alias)
    return refs


def render_all(config: BuildConfig) -> dict[str, RenderedImage]:
    """Discover and render every image; parents come from the rendered FROM lines."""
    dirs = image_dirs(config)
    found = discover(dirs, config)
    renderer = Renderer(config, dirs)
    out: dict[str, RenderedImage] = {}
    prefix = config.image_prefix
    for name, src in sorted(found.items()):
        if not src.template.exists():
            raise TemplateError(f"{src.template}: image '{name}' has files but no {TEMPLATE_NAME}")
        text = renderer.render(src)
        if _SOURCE_ONLY in text and config.install_type != "source":
            continue  # the wheel builder exists only for source builds
        refs = parse_from(text)
        if not refs:
            raise TemplateError(f"{src.template}: rendered Dockerfile has no FROM line (image '{name}')")
        parents: list[str] = []
        external: list[str] = []
        for ref in refs:
            parent = _our_image(ref, prefix, config.tag)
            if parent is None:
                external.append(ref)
            elif parent not in parents:
                parents.append(parent)
        out[name] = RenderedImage(
            name=name,
            dockerfile=text,
            files=dict(sorted(src.files.items())),
            template=src.template,
            from_refs=refs,
            parents=parents,
            external=external,
            binary_only="# stackyard: binary-only" in text,
            pip_requirements=[r for m in _PIP_RE.finditer(text) for r in m.group(1).split()],
            local_projects=[m.group(1) for m in _LOCAL_RE.finditer(text)],
        )
    return out


def _our_image(ref: str, prefix: str, tag: str) -> str | None:
    """Map ``<prefix><name>:<tag>`` back to ``name``; anything else is external."""
    if prefix and not ref.startswith(prefix):
        return None
    rest = ref[len(prefix):]
    if "/" in rest:
        return None
    name, _, ref_tag = rest.partition(":")
    if ref_tag != tag:
        return None
    return name


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            h.update(chunk)
    return h.hexdigest()
