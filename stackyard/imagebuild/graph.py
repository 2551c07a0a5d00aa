"""The image dependency graph, built from each image's rendered FROM lines."""

from __future__ import annotations

from dataclasses import dataclass

from stackyard.imagebuild.catalog import RenderedImage
from stackyard.errors import GraphError


@dataclass(frozen=True)
class ImageGraph:
    """Parents and children of every image; construction validates the tree."""

    parents: dict[str, tuple[str, ...]]

    @classmethod
    def from_images(cls, images: dict[str, RenderedImage]) -> "ImageGraph":
        for name, img in images.items():
            for parent in img.parents:
                if parent not in images:
                    raise GraphError(
                        f"{img.template}: image '{name}' is built FROM '{parent}', which has no "
                        f"Dockerfile.j2 in any docker dir (missing parent)"
                    )
        graph = cls({n: tuple(i.parents) for n, i in sorted(images.items())})
        graph.order()  # raises on a cycle
        return graph

    @property
    def children(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n: [] for n in self.parents}
        for name, parents in self.parents.items():
            for p in parents:
                out[p].append(name)
        return {n: sorted(c) for n, c in out.items()}

    def order(self) -> list[str]:
        """Parents before children, ties broken by name (deterministic)."""
        state: dict[str, int] = {}
        out: list[str] = []

        def visit(node: str, path: list[str]) -> None:
            if state.get(node) == 2:
                return
            if state.get(node) == 1:
                cycle = path[path.index(node):] + [node]
                raise GraphError("dependency cycle between images: " + " -> ".join(cycle))
            state[node] = 1
            for parent in sorted(self.parents[node]):
                visit(parent, path + [node])
            state[node] = 2
            out.append(node)

        for name in sorted(self.parents):
            visit(name, [])
        return out

    def ancestors(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = list(self.parents[name])
        while stack:
            p = stack.pop()
            if p not in seen:
                seen.add(p)
                stack.extend(self.parents[p])
        return seen

    def descendants(self, name: str) -> set[str]:
        kids = self.children
        seen: set[str] = set()
        stack = list(kids[name])
        while stack:
            c = stack.pop()
            if c not in seen:
                seen.add(c)
                stack.extend(kids[c])
        return seen

    def roots(self) -> list[str]:
        return sorted(n for n, p in self.parents.items() if not p)

    def as_tree(self, selected: set[str] | None = None) -> dict:
        """Nested ``{name: {child: {...}}}`` restricted to ``selected``."""
        kids = self.children

        def sub(node: str) -> dict:
            return {c: sub(c) for c in kids[node] if selected is None or c in selected}

        return {r: sub(r) for r in self.roots() if selected is None or r in selected}

    def as_text(self, selected: set[str] | None = None) -> str:
        lines: list[str] = []

        def walk(tree: dict, depth: int) -> None:
            for name, sub in tree.items():
                lines.append("  " * depth + name)
                walk(sub, depth + 1)

        walk(self.as_tree(selected), 0)
        return "\n".join(lines)

    def as_dot(self, selected: set[str] | None = None) -> str:
        lines = ["digraph images {"]
        for name in sorted(self.parents):
            if selected is not None and name not in selected:
                continue
            lines.append(f'  "{name}";')
            for p in self.parents[name]:
                lines.append(f'  "{p}" -> "{name}";')
        lines.append("}")
        return "\n".join(lines)
