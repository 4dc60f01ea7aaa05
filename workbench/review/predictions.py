"""Make sure the versions a reviewer compares have predictions on the annotated images.

`wb retrain` stores predictions only for images without annotations (what Label Studio
needs); review compares models against ground truth, so it needs them on the annotated
images too. Runs in the `wb` process (torch), before the FiftyOne worker syncs.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressFor = Callable[[str], Callable[[int, int], None] | None]


def versions_to_review(ws, catalog, model: str | None = None) -> list[str]:
    """The chosen version (default: the promoted one) and the one it is compared with
    (its parent), as far as they are registered."""
    from ..detection.registry import Registry

    registry = Registry.of(ws, catalog)
    versions = [mv.version for mv in registry.list()]
    if not versions or (model is not None and model not in versions):
        return []  # the review build names the versions it knows
    chosen = registry.resolve(model)
    out = [chosen.version]
    if chosen.parent in versions:
        out.append(chosen.parent)
    elif versions.index(chosen.version) > 0:  # as the review build does: the one before
        out.append(versions[versions.index(chosen.version) - 1])
    return out


def ensure_predictions(
    ws, catalog, model: str | None = None, progress_for: ProgressFor | None = None
) -> dict[str, int]:
    """Predict, for each version to review, the active annotated images it has no
    predictions for. Returns {version: images predicted now}."""
    from ..detection.predict import predict_catalog

    ids = [im.id for im in catalog.images(status="active", annotated=True)]
    done: dict[str, int] = {}
    for version in versions_to_review(ws, catalog, model):
        have = set(catalog.predictions(version, ids))
        missing = [i for i in ids if i not in have]
        if missing:
            bar = progress_for(f"predict {version}") if progress_for else None
            predict_catalog(ws, catalog, version, missing, on_progress=bar)
        done[version] = len(missing)
    return done
