"""The loop's Label Studio steps for `wb retrain`: pull before training, refresh after.

Both are ``(ws, catalog) -> one-line summary`` hooks (``RetrainOptions.pull`` /
``.refresh``). They exist only when the workspace has a Label Studio project; a
configured but unreachable server is an error that says to start it or skip the step.
"""

from __future__ import annotations

from collections.abc import Callable

Hook = Callable[[object, object], str]


def labelstudio_hooks(ws, ls_url: str | None = None) -> tuple[Hook | None, Hook | None]:
    if ws.project_id() is None:
        return None, None

    def project(ws_):
        from .labelstudio.project import open_project

        return open_project(ws_, url=ls_url)

    def pull_hook(ws_, catalog) -> str:
        from .labelstudio.pull import pull

        res = pull(project(ws_), catalog)
        return (
            f"{res.tasks} tasks in Label Studio; {res.updated_images} images updated, "
            f"{res.boxes} boxes, {res.skipped} skipped"
            + (f", {len(res.disagreements)} disagreements" if res.disagreements else "")
        )

    def refresh_hook(ws_, catalog) -> str:
        from .active.prioritize import NothingToPrioritize, prioritize
        from .labelstudio.client import connect
        from .labelstudio.ordering import apply_order
        from .labelstudio.project import open_project
        from .labelstudio.push import push

        promoted = catalog.promoted_model()
        if promoted is None:
            return "no promoted model: nothing to refresh"
        client, conn = connect(ws_, url=ls_url)
        pushed = push(ws_, catalog, client, conn)
        try:
            ranked = prioritize(ws_, catalog)
        except NothingToPrioritize as exc:
            return (
                f"{pushed.created} new tasks, {pushed.refreshed} tasks given "
                f"{promoted.version}'s boxes; {exc}"
            )
        apply_order(open_project(ws_, client, conn), catalog, ranked.version)
        return (
            f"{pushed.created} new tasks, {pushed.refreshed} tasks given "
            f"{promoted.version}'s boxes; {len(ranked.ranked)} tasks ordered least "
            "certain first"
        )

    return pull_hook, refresh_hook
