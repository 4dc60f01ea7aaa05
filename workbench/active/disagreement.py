"""Where the image classifier and the detector disagree, and how that signal joins the
uncertainty ranking of `wb prioritize`.

The classifier's answer is a probability per class; each class *claims* a set of
labels at a level both models share (the coarser of their two levels: a category
classifier against a species detector compares species). The negative class of a binary
classifier (``other``) and look-alike classes claim nothing. Summing the probabilities of
the classes with the same claim gives the classifier's belief in each claim. Then, with
``sure`` (default 0.8) and the box score that counts as a find (``confident``: the
missed-product threshold of ``UncertaintyConfig``, 0.5):

- ``classifier_only``: the classifier is sure of a claim (belief >= ``sure``) and the
  detector has no box of any of its labels at ``confident`` or above. Score: the belief.
- ``detector_only``: the detector has a box at ``confident`` or above of a label that
  some claim covers, and the classifier's belief in that label is at most
  ``1 - sure``. Score: the box's score.

The image's disagreement is the larger of the two (0 when neither holds). Signals:
``uncertainty`` (the ranking as before), ``disagreement`` (that score alone) or
``uncertainty+disagreement``: 1 - (1 - uncertainty) * (1 - weight * disagreement), the
same noisy-OR that lifts an image for the other signals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..errors import check_choice
from .uncertainty import UncertaintyConfig

SIGNALS = ("uncertainty", "disagreement", "uncertainty+disagreement")
DEFAULT_SIGNAL = "uncertainty"


@dataclass
class DisagreementConfig:
    sure: float = 0.8  # classifier belief that counts as sure (and 1 - sure as sure not)
    weight: float = 1.0  # uncertainty+disagreement: how far a full disagreement lifts

    def __post_init__(self) -> None:
        if not 0.5 < self.sure <= 1.0:
            raise ValueError("sure must be in (0.5, 1]")


@dataclass(frozen=True)
class Disagreement:
    score: float  # in [0, 1]; 0: the two agree (or cannot be compared)
    kind: str | None  # classifier_only | detector_only | None
    labels: tuple[str, ...] = ()  # the claim or the box label it is about

    def components(self) -> dict:
        return {
            "disagreement": round(self.score, 6),
            "disagreement_kind": self.kind,
            "disagreement_labels": list(self.labels),
        }


def check_signal(signal: str) -> None:
    check_choice("signal", signal, SIGNALS)


def uses_classifier(signal: str) -> bool:
    check_signal(signal)
    return "disagreement" in signal


def combine(uncertainty: float, disagreement: float | None, signal: str, weight: float) -> float:
    """The priority of an image under ``signal`` (one home for the choice)."""
    check_signal(signal)
    d = disagreement or 0.0
    if signal == "uncertainty":
        return uncertainty
    if signal == "disagreement":
        return round(d, 6)
    return round(1 - (1 - uncertainty) * (1 - weight * d), 6)


def score_disagreement(
    boxes: Iterable[dict],
    class_probs: Mapping[str, float],
    claims: Mapping[str, frozenset[str]],
    config: DisagreementConfig | None = None,
    box_label: Callable[[str], str | None] = lambda label: label,
    confident: float = UncertaintyConfig.confident,
) -> Disagreement:
    """Disagreement of one image. ``boxes``: the detector's (label, score); ``class_probs``:
    the classifier's; ``claims``: classifier class -> the shared-level labels it claims
    (classes that claim nothing left out); ``box_label`` maps a box label to that level;
    ``confident``: the box score that counts as a find (``UncertaintyConfig.confident``,
    the threshold of the missed-product signal)."""
    config = config or DisagreementConfig()
    belief: dict[frozenset[str], float] = {}
    for cls, labels in claims.items():
        if labels:
            belief[labels] = belief.get(labels, 0.0) + float(class_probs.get(cls, 0.0))
    found: dict[str, float] = {}
    for b in boxes:
        label = box_label(b["label"])
        if label is not None:
            found[label] = max(found.get(label, 0.0), float(b.get("score", 0.0)))

    best = Disagreement(0.0, None)
    for labels, p in sorted(belief.items(), key=lambda kv: (-kv[1], sorted(kv[0]))):
        if p >= config.sure and max((found.get(x, 0.0) for x in labels), default=0.0) < (confident):
            if p > best.score:
                best = Disagreement(p, "classifier_only", tuple(sorted(labels)))
    covered = {x for labels in belief for x in labels}
    for label, s in sorted(found.items(), key=lambda kv: (-kv[1], kv[0])):
        if s < confident or label not in covered:
            continue
        p = sum(v for labels, v in belief.items() if label in labels)
        if p <= 1 - config.sure + 1e-9 and s > best.score:
            best = Disagreement(s, "detector_only", (label,))
    return best


def shared_level(classifier_level: str | None, detector_level: str | None) -> str:
    """The level both models can be compared at: species when either is at species
    (a category maps up to its species, not down)."""
    return "species" if "species" in (classifier_level, detector_level) else "category"


def _at_level(label: str, level: str, taxonomy) -> set[str]:
    if level == "species":
        return {taxonomy.to_level(label, "species", unknown="keep")}
    if label in taxonomy.species_names:  # a species claims all its categories
        return {c for c in taxonomy.categories if taxonomy.species_of(c) == label}
    return {taxonomy.to_level(label, "category", unknown="keep")}


def classifier_claims(
    members: Mapping[str, Iterable[str]],
    level: str,
    taxonomy,
    is_product: Callable[[str], bool],
) -> dict[str, frozenset[str]]:
    """classifier class -> the product labels at ``level`` it claims (``members``: the
    taxonomy labels each class stands for, ``classify.dataset.class_members``); classes
    that claim no product are left out."""
    out = {}
    for cls, labels in members.items():
        claimed = {x for label in labels for x in _at_level(label, level, taxonomy)}
        claimed = frozenset(x for x in claimed if is_product(x))
        if claimed:
            out[cls] = claimed
    return out
