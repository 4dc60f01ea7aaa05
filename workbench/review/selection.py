"""Which images a reviewer picked: a saved view's samples, or the ones tagged in the App.

``select_samples`` runs inside the FiftyOne worker (``worker.py select``);
``select_review`` is the ``wb`` side that runs that worker and returns its answer.
What to do with the images (send them to Label Studio) is the caller's business.
"""

from __future__ import annotations

from ..errors import WorkbenchError
from .environment import dataset_name
from .views import MODEL_KEY, THRESHOLDS_KEY


class UnknownReviewView(WorkbenchError):
    """The review dataset has no saved view of that name."""


class NoReviewDataset(WorkbenchError):
    """`wb review` has not built the dataset yet."""


def select_samples(ws, view: str | None = None, tag: str | None = None) -> dict:
    """The samples of saved view ``view`` (the whole dataset when None), kept to those
    tagged ``tag`` (the sample, or any of its labels) when given, in the view's order.

    Returns ``{"dataset", "view", "tag", "samples": [{"image_id", "filepath"}],
    "views": [saved view names], "tags": [sample and label tags in the dataset],
    "model": the version the views are about}``.
    Runs in the worker: imports fiftyone.
    """
    import fiftyone as fo

    if view is None and tag is None:
        raise WorkbenchError("say which images: a saved view's name, or --tag TAG")
    name = dataset_name(ws)
    if not fo.dataset_exists(name):
        raise NoReviewDataset(
            f"no review dataset yet for {ws.root}; run `wb review --no-launch` "
            "(or `wb review`) first, then send one of its views"
        )
    ds = fo.load_dataset(name)
    views = ds.list_saved_views()
    if view is not None and not ds.has_saved_view(view):
        raise UnknownReviewView(
            f"review dataset {name} has no saved view '{view}'. Saved views: "
            f"{', '.join(views) or 'none (run `wb review --no-launch`)'}"
        )
    selected = ds.load_saved_view(view) if view is not None else ds
    sample_ids = selected.values("id")
    image_ids = selected.values("wb_image_id")
    filepaths = selected.values("filepath")
    tags = sorted(set(ds.distinct("tags")) | set(ds.count_label_tags()))
    if tag is not None:
        # tagged in the App: the sample itself, or one of its boxes (label tags)
        tagged = set(ds.match_tags(tag).values("id")) | set(ds.match_labels(tags=tag).values("id"))
        keep = [k for k, sid in enumerate(sample_ids) if sid in tagged]
        image_ids = [image_ids[k] for k in keep]
        filepaths = [filepaths[k] for k in keep]
    samples, seen = [], set()
    for image_id, filepath in zip(image_ids, filepaths):
        if image_id is None or image_id in seen:
            continue
        seen.add(image_id)
        samples.append({"image_id": int(image_id), "filepath": filepath})
    return {
        "dataset": name,
        "view": view,
        "tag": tag,
        "samples": samples,
        "views": views,
        "tags": tags,
        "model": ds.info.get(MODEL_KEY),
        "label_error_thresholds": ds.info.get(THRESHOLDS_KEY),
    }


def select_review(ws, view: str | None = None, tag: str | None = None, verbose: int = 0) -> dict:
    """``select_samples`` in a FiftyOne worker process (see ``worker.py``)."""
    from .runner import run_worker

    args = []
    if view is not None:
        args += ["--view", view]
    if tag is not None:
        args += ["--tag", tag]
    return run_worker(ws, "select", "selected", verbose=verbose, args=args)
