"""Settling a group: a person says which label is right, or that the images differ.

``resolve_group(catalog, group_id, label=..., resolved_by=...)`` is the one entry
point for every settling path (`wb dedup resolve`, and `wb dedup adjudicate` in Label
Studio).
"""

from __future__ import annotations

from collections.abc import Iterable

from ..errors import UnknownClassError, WorkbenchError
from .run import apply_group


class GroupNotFound(WorkbenchError):
    pass


def resolve_group(
    catalog,
    group_id: int,
    label: str | None = None,
    distinct: bool = False,
    resolved_by: str = "cli",
    valid_labels: Iterable[str] | None = None,
):
    """Settle one group and apply it; returns the updated ``DupGroup``.

    ``label``: every image of the group gets this image-level label; the group is then
    a duplicate group (one image kept, the rest ``duplicate``).
    ``distinct=True``: the images are different photos; all go back to ``active`` and
    later runs never group them together again.
    """
    if (label is None) == (not distinct):
        raise WorkbenchError("give exactly one of a label or distinct=True")
    group = catalog.dup_group(group_id)
    if group is None:
        known = [g.id for g in catalog.dup_groups()]
        hint = (
            f"known groups: {', '.join(map(str, known[:20]))}"
            if known
            else "there are no groups; run `wb dedup` first"
        )
        raise GroupNotFound(f"no duplicate group {group_id}; {hint}")
    if label is not None and valid_labels is not None:
        valid = list(valid_labels)
        if label not in valid:
            raise UnknownClassError(f"unknown label {label!r}; valid: {', '.join(valid)}")
    members = [catalog.get_image(i) for i in group.image_ids]
    with catalog.atomic():
        if label is not None:
            for m in members:
                if m.label != label:
                    catalog.update_image(m.id, label=label)
                    m.label = label
            catalog.resolve_dup_group(group_id, "label", label, resolved_by, kind="duplicate")
        else:
            catalog.resolve_dup_group(group_id, "distinct", None, resolved_by)
        group = catalog.dup_group(group_id)
        apply_group(catalog, group, members)
    return catalog.dup_group(group_id)
