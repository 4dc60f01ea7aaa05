"""The doc pages say what the program does: model version names in docs/*.md and the
README have the registry's format, and the defaults the docs give for `--min-score` and
`--max-distance` are the code's constants (issue 15, item 5: docs said 0, `v0003`, `v3`).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from workbench.dedup.run import DEFAULT_MAX_DISTANCE
from workbench.detection.registry import VERSION_RE
from workbench.labelstudio.tasks import DISPLAY_MIN_SCORE

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

# a word that looks like a model version: v + digits, not part of a longer name
# (mobilenet_v3, python3.11, v1.23 are not versions)
VERSION_WORD = re.compile(r"(?<![\w.\-/])v\d+(?![\w.])")
# how the docs give an option's default: "`--opt` (X)", "`--opt N` (default X)",
# "`--opt X`" in an option table ("| `--opt` (X) |")
DEFAULT_OF = r"`{opt}(?: [A-Z]+)?` \((?:default )?([0-9.]+)\)"
DOCUMENTED_DEFAULTS = {"--min-score": DISPLAY_MIN_SCORE, "--max-distance": DEFAULT_MAX_DISTANCE}


def registry_name(word: str) -> bool:
    """A name the registry gives (``Registry.next_version``: v + at least 3 digits, no
    extra leading zeros), so v0003 is not one although VERSION_RE reads it."""
    m = VERSION_RE.match(word)
    return bool(m) and word == f"v{int(m.group(1)):03d}"


def bad_versions(text: str) -> list[str]:
    return [m for m in VERSION_WORD.findall(text) if not registry_name(m)]


def stated_defaults(text: str, option: str) -> list[str]:
    return re.findall(DEFAULT_OF.format(opt=re.escape(option)), text)


def test_the_rules_catch_the_drift_the_issue_found():
    assert bad_versions("wb evaluate --model v0003 --compare v3") == ["v0003", "v3"]
    assert bad_versions("wb review --model v001; mobilenet_v3; label-studio v1.23") == []
    assert stated_defaults("| `--min-score` (0) | boxes scored below", "--min-score") == ["0"]
    assert stated_defaults("`--max-distance N` (default 6), `--x`", "--max-distance") == ["6"]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_version_names_have_the_registry_format(page):
    assert bad_versions(page.read_text()) == [], (
        f"{page.name}: model versions are named like v001 (Registry.next_version)"
    )


@pytest.mark.parametrize("option", sorted(DOCUMENTED_DEFAULTS))
def test_documented_defaults_are_the_code_constants(option):
    want = DOCUMENTED_DEFAULTS[option]
    found = {p.name: stated_defaults(p.read_text(), option) for p in PAGES}
    found = {name: values for name, values in found.items() if values}
    assert found, f"no doc page states the default of {option}: the check would pass blindly"
    for name, values in found.items():
        for value in values:
            assert float(value) == float(want), (
                f"{name} gives {option} a default of {value}; the code's is {want}"
            )
