"""Load one of the images' stand-alone Python scripts (no .py suffix) as a module, for tests."""

from __future__ import annotations

import importlib.machinery
import importlib.util
from pathlib import Path
from types import ModuleType

IMAGES = Path(__file__).resolve().parents[2] / "images"


def load_script(path: Path) -> ModuleType:
    """A fresh module object of the script at ``path`` (its ``__name__`` is not ``__main__``)."""
    loader = importlib.machinery.SourceFileLoader(path.name.replace("-", "_") + "_under_test", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod
