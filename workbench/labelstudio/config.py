"""Label Studio labelling configs: the one we build (``detection_config``, from the
templates in ``label_config/``), the one parsed form of any project's config
(``parse_label_config``) and the one mapping between model classes and a project's
labels (``ControlMapping``), used by `wb serve`, `wb push` and `wb pull` alike.

The conventions are label-studio-ml-backend's, so a project set up for its examples
works here too:

- every ``<RectangleLabels name=... toName=...>`` is a control; it draws on the
  ``<Image name=... value="$key">`` its ``toName`` names (the task's ``data[key]``);
- ``<Label value="Vehicle" predicted_values="car, truck"/>``: the boxes of those model
  classes (comma separated, trimmed, case-insensitive) go to that label;
- ``model_score_threshold="0.5"`` on the control: the minimum box score for that
  control (``score_threshold``, the older spelling, is read too).

Mapping rules, per control (``ControlMapping``): a label that names classes (its
``predicted_values``, or an entry of the workspace's ``[labelstudio.label_map]``,
which replaces them) gets exactly those classes' boxes; a label that names none gets
the boxes of the class with its own name (case-insensitive), at the project's label
level through the taxonomy, so a species label collects its products' boxes. A class
is tried as itself first, then at that level. When two labels claim one class, the
first in the config wins (``notes`` says so). Back from Label Studio (`wb pull`), a
project label becomes the one class it names, else its own name when the taxonomy has
it; anything else cannot be mapped back (``class_for`` says why).

Configs are parsed with the standard library's expat, which fetches no external
entity; a config with a DTD (entity declarations) is refused before parsing.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from ..errors import WorkbenchError
from ..taxonomy import Taxonomy

TEMPLATE_DIR = Path(__file__).resolve().parent.parent.parent / "label_config"
DETECTION_TEMPLATE = "detection.xml"
LABELS_MARK = "<!-- WB_LABELS -->"
FROM_NAME = "label"  # the RectangleLabels control
TO_NAME = "image"  # the Image object
DATA_FIELDS = ("image", "label_hint", "model_hint")  # what every task's data must hold
THRESHOLD_ATTRS = ("model_score_threshold", "score_threshold")  # the second: older spelling
LABEL_MAP_SETTING = "[labelstudio.label_map]"


class LabelConfigError(WorkbenchError):
    """The label config cannot hold rectangles, or is not one Label Studio would take."""


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


# ---- the parsed config ------------------------------------------------------------
@dataclass(frozen=True)
class ProjectLabel:
    """One ``<Label>`` of a control."""

    value: str
    predicted_values: tuple[str, ...] = ()  # trimmed, as written


@dataclass(frozen=True)
class RectangleControl:
    """One ``<RectangleLabels>`` and the image it draws on."""

    name: str  # from_name of its regions
    to_name: str  # the Image's name
    data_key: str  # the task data field holding that image's URL
    labels: tuple[ProjectLabel, ...]
    score_threshold: float | None = None  # model_score_threshold; None: the backend's

    @property
    def label_values(self) -> list[str]:
        return [lab.value for lab in self.labels]


@dataclass(frozen=True)
class LabelConfig:
    """A project's label config as far as rectangles go: its controls, in order."""

    controls: tuple[RectangleControl, ...]

    def mappings(
        self,
        taxonomy: Taxonomy | None,
        level: str,
        label_map: Mapping[str, Iterable[str]] | None = None,
    ) -> tuple[ControlMapping, ...]:
        return tuple(ControlMapping.build(c, taxonomy, level, label_map) for c in self.controls)


def split_values(text: str | None) -> tuple[str, ...]:
    """``"car, truck"`` -> ``("car", "truck")``: comma separated, trimmed, no empties."""
    return tuple(v.strip() for v in (text or "").split(",") if v.strip())


def parse_label_config(text: str) -> LabelConfig:
    """Every RectangleLabels control of a config with its image, labels and threshold.
    ``LabelConfigError`` when the text is not XML, declares a DTD, or holds no control
    that can draw rectangles on an image."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        # Label Studio configs never need one; entities are how XML bombs and file reads
        # get in, so none is expanded here
        raise LabelConfigError("the label config declares a DTD or entities; refused")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise LabelConfigError(f"the label config is not valid XML: {exc}") from None
    images = {i.get("name"): i.get("value") or "" for i in root.iter("Image") if i.get("name")}
    controls = []
    for ctrl in root.iter("RectangleLabels"):
        name, to = ctrl.get("name"), (ctrl.get("toName") or "").split(",")[0].strip()
        if not name or not to:
            continue
        value = images.get(to, "")
        if not value.startswith("$") or len(value) < 2:
            raise LabelConfigError(
                f'the label config has no <Image name="{to}" value="$field"> for the '
                f"rectangles of control '{name}'"
            )
        labels = tuple(
            ProjectLabel(lab.get("value"), split_values(lab.get("predicted_values")))
            for lab in ctrl.iter("Label")
            if lab.get("value")
        )
        controls.append(RectangleControl(name, to, value[1:], labels, _threshold(ctrl, name)))
    if not controls:
        raise LabelConfigError(
            "the label config has no RectangleLabels control with a name and toName: this "
            "backend draws rectangles"
        )
    return LabelConfig(tuple(controls))


def _threshold(ctrl: ET.Element, name: str) -> float | None:
    attr = next((a for a in THRESHOLD_ATTRS if ctrl.get(a) not in (None, "")), None)
    if attr is None:
        return None
    try:
        value = float(ctrl.get(attr))
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise LabelConfigError(
            f"control '{name}': {attr}=\"{ctrl.get(attr)}\" is not a score between 0 and 1"
        )
    return value


def config_labels(label_config: str) -> list[str]:
    """The label values of the RectangleLabels control of a config (ours: ``FROM_NAME``,
    else the first)."""
    controls = parse_label_config(label_config).controls
    return next((c for c in controls if c.name == FROM_NAME), controls[0]).label_values


# ---- the mapping ------------------------------------------------------------------
@dataclass(frozen=True)
class ControlMapping:
    """Model (catalog) class <-> a control's labels (the module's rules)."""

    control: RectangleControl
    taxonomy: Taxonomy | None
    level: str
    named: dict[str, tuple[str, ...]]  # project label -> the classes it names
    notes: tuple[str, ...] = ()
    unused_keys: tuple[str, ...] = ()  # label_map entries naming no label of this control
    _claims: dict[str, str] = field(default_factory=dict, repr=False)  # class -> label
    _by_name: dict[str, str] = field(default_factory=dict, repr=False)  # label -> label

    @classmethod
    def build(
        cls,
        control: RectangleControl,
        taxonomy: Taxonomy | None,
        level: str,
        label_map: Mapping[str, Iterable[str]] | None = None,
    ) -> ControlMapping:
        extra = {k.strip().casefold(): tuple(v) for k, v in (label_map or {}).items()}
        named, claims, by_name, notes = {}, {}, {}, []
        for lab in control.labels:
            values = extra.get(lab.value.casefold(), lab.predicted_values)
            if not values:
                by_name.setdefault(lab.value.casefold(), lab.value)
                continue
            named[lab.value] = values
            for v in values:
                first = claims.setdefault(v.casefold(), lab.value)
                if first != lab.value:
                    notes.append(
                        f"class '{v}' is named by labels '{first}' and '{lab.value}': its "
                        f"boxes go to '{first}'"
                    )
        values = {v.casefold() for v in control.label_values}
        unused = tuple(k for k in (label_map or {}) if k.strip().casefold() not in values)
        return cls(control, taxonomy, level, named, tuple(notes), unused, claims, by_name)

    def label_for(self, label: str | None) -> str | None:
        """The project label a box of class ``label`` is drawn with; None: no place."""
        if not label:
            return None
        for candidate in self._candidates(label):
            key = candidate.casefold()
            if key in self._claims:
                return self._claims[key]
            if key in self._by_name:
                return self._by_name[key]
        return None

    def _candidates(self, label: str) -> list[str]:
        out = [label]
        if self.taxonomy is not None:
            at_level = self.taxonomy.to_level(label, self.level, unknown="none")
            if at_level and at_level != label:
                out.append(at_level)
        return out

    def class_for(self, project_label: str) -> tuple[str | None, str]:
        """The catalog class an annotated box of ``project_label`` stands for, and when
        there is none (None), why."""
        key = project_label.casefold()
        values = next((v for k, v in self.named.items() if k.casefold() == key), ())
        if len(values) == 1:
            found = self._known(values[0])
            if found is not None:
                return found, ""
            return None, f"it names '{values[0]}', which is not a class of the workspace taxonomy"
        own = self._known(project_label)
        if own is not None:
            return own, ""
        if values:
            return None, f"it stands for several classes ({', '.join(values)})"
        return None, "no class of the workspace taxonomy has this name and no class is named for it"

    def _known(self, label: str) -> str | None:
        if self.taxonomy is None:
            return label
        return self.taxonomy.canonical(label)

    def fed_by(self, classes: Iterable[str]) -> dict[str, list[str]]:
        """Every label of the control (config order) -> the given classes whose boxes it
        gets (an empty list: none of them)."""
        out: dict[str, list[str]] = {v: [] for v in self.control.label_values}
        for c in classes:
            label = self.label_for(c)
            if label is not None:
                out.setdefault(label, []).append(c)
        return out


# ---- what a config will do with a model's classes (/setup, `wb serve --connect`) ------
@dataclass
class ControlReport:
    name: str
    to_name: str
    data_key: str
    score_threshold: float | None
    fed: dict[str, list[str]]  # project label -> model classes
    unreached: list[str]  # model classes that reach no label of this control
    notes: list[str]


@dataclass
class MappingReport:
    controls: list[ControlReport]
    unreached: list[str]  # model classes no control's label receives
    warning: str | None  # set when no label of any control gets any class

    def lines(self, min_score: float | None = None) -> list[str]:
        """The report as lines a person reads (the warning last)."""
        out = []
        for c in self.controls:
            fed = "; ".join(
                f"{label} <- {', '.join(cs)}" if cs else f"{label} <- nothing"
                for label, cs in c.fed.items()
            )
            if c.score_threshold is not None:
                threshold = f"min score {c.score_threshold:g} (model_score_threshold)"
            elif min_score is not None:
                threshold = f"min score {min_score:g}"
            else:
                threshold = ""
            out.append(
                f"labels of '{c.name}' (image '{c.to_name}', task field '{c.data_key}'): {fed}"
                + (f"; {threshold}" if threshold else "")
            )
            out.extend(f"  note: {n}" for n in c.notes)
        if self.unreached and self.warning is None:
            out.append(f"model classes that reach no label: {', '.join(self.unreached)}")
        if self.warning:
            out.append(f"warning: {self.warning}")
        return out


def mapping_report(mappings: Iterable[ControlMapping], classes: list[str]) -> MappingReport:
    """Which project labels the model's ``classes`` feed, which classes reach none, and
    a warning when nothing matches at all (Label Studio would get no boxes)."""
    controls, reached = [], set()
    mappings = list(mappings)
    for m in mappings:
        fed = m.fed_by(classes)
        got = {c for cs in fed.values() for c in cs}
        reached |= got
        notes = list(m.notes)
        for label, values in m.named.items():
            unknown = [v for v in values if v.casefold() not in {c.casefold() for c in classes}]
            if unknown:
                notes.append(f"'{label}' names {', '.join(unknown)}, not a class of the model")
        controls.append(
            ControlReport(
                m.control.name,
                m.control.to_name,
                m.control.data_key,
                m.control.score_threshold,
                fed,
                [c for c in classes if c not in got],
                notes,
            )
        )
    unused = set.intersection(*(set(m.unused_keys) for m in mappings)) if mappings else set()
    if unused and controls:
        controls[0].notes.append(
            f"{LABEL_MAP_SETTING} entries that name no label of the project: "
            + ", ".join(sorted(unused))
        )
    warning = None
    if not reached:
        labels = sorted({label for c in controls for label in c.fed})
        warning = (
            f"no label of the project ({', '.join(labels) or 'none'}) matches any class of "
            f"the model ({', '.join(classes)}): Label Studio gets no boxes. Name the classes "
            'in the labels\' predicted_values (<Label value="Car" predicted_values="car, '
            f'truck"/>), or map them in workbench.toml under {LABEL_MAP_SETTING} '
            '(Car = ["car", "truck"])'
        )
    return MappingReport(controls, [c for c in classes if c not in reached], warning)
