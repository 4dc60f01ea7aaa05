"""Connected components of integer ids: the one union-find that dedup's groups and the
leak-free splits both cut with."""

from __future__ import annotations

from collections.abc import Iterable


def components(links: Iterable[tuple[int, int]], nodes: Iterable[int] = ()) -> list[list[int]]:
    """Components of the graph with edges ``links`` over the ids in ``links`` and ``nodes``
    (a node with no link is a component of its own). Each component is sorted; components
    are in order of their smallest id."""
    parent: dict[int, int] = {n: n for n in nodes}

    def root(x: int) -> int:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in links:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    out: dict[int, list[int]] = {}
    for x in list(parent):
        out.setdefault(root(x), []).append(x)
    return sorted((sorted(c) for c in out.values()), key=lambda c: c[0])
