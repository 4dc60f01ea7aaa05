"""Classes and their groups: species -> product categories.

The taxonomy is data (a TOML file), never code: nothing here assumes wildlife.
A flat taxonomy (``wb init --classes a,b``) makes each class its own species.
"""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import UnknownClassError, WorkbenchError, check_choice

BACKGROUND = "background"
LEVELS = ("species", "category")
UNKNOWN_POLICIES = ("raise", "keep", "none")
DEFAULT_TAXONOMY = Path(__file__).resolve().parent.parent / "label_config" / "wildlife.toml"


def image_level_label(
    own: str | None, box_labels: Iterable[str], *, default: str | None = BACKGROUND
) -> str | None:
    """The label an image is stratified, scored and exported by: its own label when it
    has one, else its most common box class (the first seen among equals), else
    ``default`` (background: no label and no boxes means nothing is there)."""
    if own:
        return own
    counts = Counter(box_labels)
    return counts.most_common(1)[0][0] if counts else default


@dataclass(frozen=True)
class Species:
    name: str
    categories: tuple[str, ...]
    lookalike: bool = False


@dataclass(frozen=True)
class Taxonomy:
    name: str
    species: tuple[Species, ...]
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    # ---- construction -------------------------------------------------
    @classmethod
    def from_file(cls, path: Path | str) -> Taxonomy:
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise WorkbenchError(f"taxonomy file not found: {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise WorkbenchError(f"taxonomy file {path} is not valid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict, source: str = "<dict>") -> Taxonomy:
        species = []
        for entry in data.get("species", []):
            if "name" not in entry:
                raise WorkbenchError(f"{source}: every [[species]] needs a name")
            cats = tuple(entry.get("categories") or [entry["name"]])
            species.append(Species(entry["name"], cats, bool(entry.get("lookalike", False))))
        if not species:
            raise WorkbenchError(f"{source}: the taxonomy has no [[species]] entries")
        tax = cls(data.get("name", "taxonomy"), tuple(species))
        tax._validate(source)
        return tax

    @classmethod
    def flat(cls, classes: list[str]) -> Taxonomy:
        classes = [c.strip() for c in classes if c.strip()]
        if not classes:
            raise WorkbenchError("--classes needs at least one class name")
        tax = cls("flat", tuple(Species(c, (c,)) for c in classes))
        tax._validate("--classes")
        return tax

    @classmethod
    def default(cls) -> Taxonomy:
        return cls.from_file(DEFAULT_TAXONOMY)

    def to_dict(self) -> dict:
        out = {"name": self.name, "species": []}
        for s in self.species:
            entry = {"name": s.name, "categories": list(s.categories)}
            if s.lookalike:
                entry["lookalike"] = True
            out["species"].append(entry)
        return out

    def _validate(self, source: str) -> None:
        seen: dict[str, str] = {}
        spelling: dict[str, str] = {}  # casefolded name -> the first spelling met
        for s in self.species:
            for name in (s.name, *s.categories):
                if name.casefold() == BACKGROUND:
                    raise WorkbenchError(
                        f"{source}: '{BACKGROUND}' is reserved for background-only images"
                    )
                first = spelling.setdefault(name.casefold(), name)
                if first != name:
                    raise WorkbenchError(
                        f"{source}: '{name}' and '{first}' differ only in case; class names "
                        f"are compared case-insensitively, so keep one spelling (e.g. '{first}')"
                    )
            for c in s.categories:
                if c in seen and seen[c] != s.name:
                    raise WorkbenchError(f"{source}: category '{c}' appears under two species")
                seen[c] = s.name

    # ---- queries --------------------------------------------------------
    @property
    def categories(self) -> list[str]:
        return [c for s in self.species for c in s.categories]

    @property
    def species_names(self) -> list[str]:
        return [s.name for s in self.species]

    @property
    def all_labels(self) -> list[str]:
        """Every name an image or box may carry (species and categories, no repeats)."""
        out: list[str] = []
        for s in self.species:
            for n in (s.name, *s.categories):
                if n not in out:
                    out.append(n)
        return out

    def classes(self, level: str = "species") -> list[str]:
        """Detection classes at a level, in taxonomy order."""
        check_choice("level", level, LEVELS)
        return self.species_names if level == "species" else self.categories

    def species_of(self, label: str) -> str:
        for s in self.species:
            if label == s.name or label in s.categories:
                return s.name
        raise UnknownClassError(self._unknown_message(label))

    def to_level(self, label: str | None, level: str, unknown: str = "raise") -> str | None:
        """Map a species or category label to the given level (categories of a
        species label are unknown, so a species label stays a species label).

        ``unknown`` says what a label outside the taxonomy becomes: ``"raise"``
        (``UnknownClassError``), ``"keep"`` (the label itself) or ``"none"`` (None)."""
        check_choice("unknown-label policy", unknown, UNKNOWN_POLICIES)
        if label is None or label == BACKGROUND:
            return label
        if unknown != "raise" and not self.is_known(label):
            return label if unknown == "keep" else None
        if level == "species":
            return self.species_of(label)
        if label in self.categories:
            return label
        s = self.species_of(label)
        cats = next(sp.categories for sp in self.species if sp.name == s)
        # a species with one category (flat taxonomies, look-alikes) maps onto it
        return cats[0] if len(cats) == 1 else label

    def canonical(self, label: str) -> str | None:
        """The taxonomy's own spelling of ``label``, compared case-insensitively
        (``Raccoon`` -> ``raccoon``); None when no class matches."""
        if label.casefold() == BACKGROUND:
            return BACKGROUND
        folded = label.casefold()
        return next((n for n in self.all_labels if n.casefold() == folded), None)

    def is_known(self, label: str) -> bool:
        return label == BACKGROUND or label in self.all_labels

    def check(self, label: str) -> None:
        if not self.is_known(label):
            raise UnknownClassError(self._unknown_message(label))

    def lookalike_species(self) -> list[str]:
        return [s.name for s in self.species if s.lookalike]

    def with_classes(self, new: list[str]) -> Taxonomy:
        """A taxonomy with extra top-level classes (``--add-classes``)."""
        extra = tuple(Species(c, (c,)) for c in new if not self.is_known(c))
        tax = Taxonomy(self.name, self.species + extra)
        tax._validate("--add-classes")
        return tax

    def _unknown_message(self, label: str) -> str:
        return (
            f"unknown class '{label}'. Known classes: {', '.join(self.all_labels)}"
            f" (and '{BACKGROUND}' for background-only images). "
            "Use --add-classes to add new classes to the workspace taxonomy."
        )
