"""``evaluate_classifier``: one row of scores per test set (the catalog's test split and
any folders-per-class sets), parameter count, inference ms/image, score per million
parameters, and a confusion-matrix PNG per set in the workspace's reports folder. The
scores are merged into the version's metrics (``metrics["test_sets"]``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from ..detection.registry import DATA, Registry
from ..errors import WorkbenchError
from . import models
from .dataset import LabelledImage, folder_images, target_of
from .metrics import confusion, scores
from .train import _loader, load_classifier, predict_labels

CATALOG_TEST = "catalog-test"


def _confusion_png(matrix, classes, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.2 + 0.8 * len(classes), 1.0 + 0.8 * len(classes)))
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, row in enumerate(matrix):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center")
    ax.set_title(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def evaluate_classifier(ws, catalog, version: str | None, test_sets: dict[str, Path]) -> dict:
    """Scores of ``version`` (default: the promoted classifier) on each test set."""
    registry = Registry.of(ws, catalog)
    mv = registry.resolve(version, task="classify")
    model, config = load_classifier(mv)
    classes = mv.classes
    sets: dict[str, list[LabelledImage]] = {}
    data = json.loads((mv.path / DATA).read_text()) if (mv.path / DATA).is_file() else {}
    test_ids = set(data.get("test") or [])
    by_id = {im.id: im for im in catalog.images(ids=test_ids)} if test_ids else {}
    own = []
    for image_id in sorted(test_ids):
        im = by_id.get(image_id)
        if im is not None and im.label:
            target = target_of(im.label, config, ws.taxonomy)
            if target in classes:
                own.append(LabelledImage(im.id, im.path, target, "test"))
    if own:
        sets[CATALOG_TEST] = own
    for name, path in test_sets.items():
        sets[name] = folder_images(Path(path), classes, ws.taxonomy, config)
    if not sets:
        raise WorkbenchError(
            f"model {mv.version} has no catalog test images: pass `--test-set NAME=FOLDER`"
        )
    n_params = models.parameter_count(model)
    rows = []
    for name, items in sets.items():
        loader = _loader(items, classes, config, 16, False)
        t0 = time.perf_counter()
        truth, pred, _ = predict_labels(model, loader)
        ms = (time.perf_counter() - t0) * 1000 / len(items)
        s = scores(truth, pred, len(classes))
        png = ws.reports_dir / "classify" / f"{mv.version}-{name}-confusion.png"
        _confusion_png(confusion(truth, pred, len(classes)), classes, f"{mv.version} {name}", png)
        rows.append(
            {
                "set": name,
                **s,
                "parameters": n_params,
                "ms_per_image": round(ms, 2),
                "f_score_per_million_params": s["f_score"] / (n_params / 1e6),
                "confusion_png": str(png),
            }
        )
    registry.update_metrics(mv.version, {"test_sets": rows, "parameters": n_params})
    return {"version": mv.version, "classes": classes, "sets": rows}
