"""Helpers for the image-builder unit tests (no container engine needed)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from stackyard.build.config import BuildConfig


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """Write ``{relative path: text}`` under ``root`` and return ``root``."""
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def tree(tmp_path: Path) -> Callable[..., Path]:
    """``tree({...}, name='dd')`` writes a docker dir under tmp_path."""
    counter = {"n": 0}

    def make(files: dict[str, str], name: str | None = None) -> Path:
        counter["n"] += 1
        return write_tree(tmp_path / (name or f"dd{counter['n']}"), files)

    return make


@pytest.fixture
def config() -> Callable[..., BuildConfig]:
    def make(**kw: Any) -> BuildConfig:
        kw.setdefault("work_dir", "/tmp/stackyard-unit-build")
        for key in ("docker_dirs", "template_overrides"):
            if key in kw:
                kw[key] = [str(p) for p in kw[key]]
        return BuildConfig(**kw)

    return make
