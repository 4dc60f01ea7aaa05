"""Label Studio labelling configs, built from the templates in ``label_config/``."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import quoteattr

from ..errors import WorkbenchError

TEMPLATE_DIR = Path(__file__).resolve().parent.parent.parent / "label_config"
DETECTION_TEMPLATE = "detection.xml"
LABELS_MARK = "<!-- WB_LABELS -->"
FROM_NAME = "label"  # the RectangleLabels control
TO_NAME = "image"  # the Image object
DATA_FIELDS = ("image", "label_hint", "model_hint")  # what every task's data must hold


def detection_config(classes: list[str], template: str | Path | None = None) -> str:
    """The RectangleLabels config over ``classes`` (in the given order)."""
    if not classes:
        raise WorkbenchError("the taxonomy has no classes at this level: nothing to label")
    path = Path(template) if template else TEMPLATE_DIR / DETECTION_TEMPLATE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise WorkbenchError(f"label config template not found: {path}") from None
    if LABELS_MARK not in text:
        raise WorkbenchError(f"label config template {path} lacks the {LABELS_MARK} marker")
    indent = text.split(LABELS_MARK, 1)[0].rsplit("\n", 1)[-1]
    labels = f"\n{indent}".join(f"<Label value={quoteattr(c)}/>" for c in classes)
    return text.replace(LABELS_MARK, labels)


def config_labels(label_config: str) -> list[str]:
    """The label values of the RectangleLabels control of a config."""
    import xml.etree.ElementTree as ET

    root = ET.fromstring(label_config)
    for ctrl in root.iter("RectangleLabels"):
        if ctrl.get("name") == FROM_NAME:
            return [lab.get("value") for lab in ctrl.iter("Label")]
    return []
