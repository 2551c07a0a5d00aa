"""YAML parsing that reports an operator's mistake as ``file:line: reason``."""

from __future__ import annotations

from typing import Any

import yaml

from stackyard.errors import ConfigError


def parse_yaml(text: str, source: str) -> Any:
    """``yaml.safe_load`` whose errors are one-line ConfigErrors naming file and line."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise ConfigError(f"{source}{line}: invalid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {exc}") from None
