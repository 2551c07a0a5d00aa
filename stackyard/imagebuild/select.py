"""Which images a build run acts on.

Plain names match exactly (``keystone`` is keystone, not every image containing
the word); regexes are used only when asked for (``--regex``). Profile names
(``infra``, ``core``, ``all``) expand to their members. Parents are added
automatically unless ``--skip-parents``.
"""

from __future__ import annotations

import difflib
import re

from stackyard.errors import ConfigError, ImageNotFoundError
from stackyard.imagebuild.graph import ImageGraph


def select_images(
    graph: ImageGraph,
    patterns: list[str],
    *,
    profiles: dict[str, list[str]],
    regex: bool = False,
    profile: list[str] | None = None,
    skip_parents: bool = False,
) -> set[str]:
    """Return the set of image names to build; raise on names that match nothing."""
    known = set(graph.parents)
    chosen: set[str] = set()
    wanted_profiles = list(profile or [])
    if not patterns and not wanted_profiles:
        chosen = set(known)

    def expand(name: str) -> set[str]:
        members = profiles[name]
        for m in members:
            if m not in known:
                raise ImageNotFoundError(f"profile '{name}' names unknown image '{m}'")
        return set(members) if members else set(known)

    for name in wanted_profiles:
        if name not in profiles:
            raise ConfigError(f"unknown profile '{name}' (known: {', '.join(sorted(profiles))})")
        chosen |= expand(name)
    for pat in patterns:
        if regex:
            try:
                rx = re.compile(pat)
            except re.error as exc:
                raise ConfigError(f"invalid regex '{pat}': {exc}") from None
            hits = {n for n in known if rx.search(n)}
            if not hits:
                raise ImageNotFoundError(f"regex '{pat}' matches no image")
            chosen |= hits
        elif pat in known:
            chosen.add(pat)
        elif pat in profiles:
            chosen |= expand(pat)
        else:

            close = difflib.get_close_matches(pat, sorted(known), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise ImageNotFoundError(f"unknown image '{pat}'{hint}")
    if not skip_parents:
        for name in list(chosen):
            chosen |= graph.ancestors(name)
    return chosen
