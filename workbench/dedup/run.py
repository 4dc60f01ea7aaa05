"""`wb dedup` as a list of steps: hash what is new, find pairs, group, judge, record.

1. Images taking part: status active, duplicate or conflict (``unreadable`` are listed,
   ``excluded`` ignored).
2. Hash the images the catalog has no hashes for (worker processes, cached).
3. Pairs: identical bytes (sha256); whole-image hash (mirror included) or centre-view
   hash within ``max_distance``; every hash pair has its colours checked, and pairs in
   the grey zone up to ``verify_distance`` on both views also their structure, on pixels
   (``verify.py``).
4. Pairs settled as ``distinct`` by a person are dropped.
5. Connected components become groups; a group keeps its resolution on re-runs
   (same members = same ``group_key``).
6. Statuses: duplicate groups keep one image, the rest become ``duplicate``; conflict
   groups are all ``conflict``; images no longer in any group go back to ``active``.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..catalog.records import DupGroup, DupMember, ImageRecord
from ..engine import Engine, check_worker_read, open_engine
from ..errors import WorkbenchError
from ..faults import fault_point
from .embeddings import (
    BATCH_SIZE as EMBED_BATCH,
)
from .embeddings import (
    DEFAULT_MIN_COSINE,
    MODEL_KEY,
    check_min_cosine,
    find_cosine_pairs,
    from_bytes,
    to_bytes,
    weights_available,
)
from .groups import Edge, connected_components, group_key, group_kind, keeper, member_distances
from .hashing import (
    DEFAULT_METHOD,
    METHODS,
    cache_keys,
    check_method,
    hex_to_uint64,
    iter_hashes,
)
from .search import check_max_distance, distances, find_pairs
from .verify import DEFAULT_MIN_CORRELATION, verify_pairs

log = logging.getLogger(__name__)

# Pairs up to this distance are taken without a pixel check. 6 sufficed on the planted
# kangaroo set, but smooth low-texture photos (the demo data) can be different pictures at
# 4; at 2, with the pixel check deciding 2 < d <= 16, kangaroo is unchanged (recall 0.998,
# precision 1.000) and the demo's false conflicts disappear (docs/dedup.md, Thresholds).
DEFAULT_MAX_DISTANCE = 2
DEFAULT_VERIFY_DISTANCE = 16
TAKING_PART = ("active", "duplicate", "conflict")
SAVE_EVERY = 256  # hashes stored per transaction while results stream in
REASON_PREFIX = "dedup"

ProgressFor = Callable[[str], Callable[[int, int], None] | None]


# The embedding method (embeddings.py); the others are hashes (hashing.py). Not the
# default: phash,cnn has the best recall (0.996 vs 0.724) but precision 0.974 on the
# planted kangaroo set (two shots of one scene join), and on the synthetic demo data
# cnn's pairs are half false (docs/dedup.md, CNN embeddings).
CNN = "cnn"


class EmptyCatalog(WorkbenchError):
    pass


class UnknownDedupMethod(WorkbenchError):
    pass


class EmbeddingWeightsMissing(WorkbenchError):
    pass


def parse_methods(method: str) -> tuple[str | None, bool]:
    """``phash`` | ``cnn`` | ``phash,cnn`` -> (hash method or None, cnn on?)."""
    parts = [p.strip() for p in method.split(",") if p.strip()]
    hashes = [p for p in parts if p != CNN]
    bad = [p for p in hashes if p not in METHODS]
    if not parts or bad or len(hashes) > 1 or len(set(parts)) != len(parts):
        raise UnknownDedupMethod(
            f"unknown dedup method {method!r}; valid: one of {', '.join(METHODS)}, "
            f"{CNN}, or a hash and {CNN} together (e.g. phash,{CNN})"
        )
    return (hashes[0] if hashes else None), CNN in parts


@dataclass
class DedupOptions:
    method: str = DEFAULT_METHOD
    max_distance: int = DEFAULT_MAX_DISTANCE
    verify_distance: int = DEFAULT_VERIFY_DISTANCE  # 0: no pixel check (grey zone rejected)
    min_correlation: float = DEFAULT_MIN_CORRELATION
    min_cosine: float = DEFAULT_MIN_COSINE  # cnn pairs at or above this cosine
    workers: int | None = None

    @property
    def hash_method(self) -> str | None:
        return parse_methods(self.method)[0]

    @property
    def cnn(self) -> bool:
        return parse_methods(self.method)[1]

    def validate(self) -> DedupOptions:
        if self.hash_method is not None:
            check_method(self.hash_method)
        check_min_cosine(self.min_cosine)
        check_max_distance(self.max_distance)
        check_max_distance(self.verify_distance)
        if not 0 < self.min_correlation <= 1:
            raise ValueError(f"min_correlation must be in (0, 1], got {self.min_correlation}")
        return self


@dataclass
class DedupRun:
    """What one run did; the report is built from this and the catalog."""

    options: DedupOptions
    images: int = 0  # images that took part
    hashed_now: int = 0
    hashed_cached: int = 0
    embedded_now: int = 0
    embedded_cached: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    pairs: dict[str, int] = field(default_factory=dict)  # by how: exact, hash, centre, verified
    rejected_by_pixels: int = 0  # pairs the pixel check (structure or colour) turned down
    rejected_by_colour: int = 0  # of those: hash pairs whose colours differ
    suppressed_distinct: int = 0
    group_ids: list[int] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)


def _progress(progress_for: ProgressFor | None, stage: str):
    return progress_for(stage) if progress_for else None


def _ensure_hashes(
    catalog,
    images: list[ImageRecord],
    options: DedupOptions,
    run: DedupRun,
    progress_for: ProgressFor | None,
    engine,
):
    """Hash the images without cached hashes on ``engine``; results are stored as they
    arrive, every ``SAVE_EVERY`` images, so an interrupted run keeps them."""
    full_key, centre_key = cache_keys(options.hash_method)  # versioned: old hashes unread
    full, centre = catalog.image_hashes(full_key), catalog.image_hashes(centre_key)
    todo = [im for im in images if im.id not in full or im.id not in centre]
    run.hashed_cached = len(images) - len(todo)
    if not todo:
        return full, centre
    by_path = {im.path: im for im in todo}
    on_progress = _progress(progress_for, "hashing")
    pending: list = []
    done = 0

    def save() -> None:
        hashed = [(by_path[p], h) for p, h, _ in pending if h is not None]
        catalog.save_image_hashes(full_key, [(im.id, h.hash, h.mirror_hash) for im, h in hashed])
        catalog.save_image_hashes(
            centre_key, [(im.id, h.centre_hash, h.centre_mirror_hash) for im, h in hashed]
        )
        for path, _, reason in pending:
            if reason is not None:
                catalog.set_status([by_path[path].id], "unreadable", f"{REASON_PREFIX}: {reason}")
                run.unreadable.append((path, reason))
        run.hashed_now += len(hashed)
        pending.clear()

    try:
        for chunk in iter_hashes(list(by_path), options.hash_method, options.workers, engine):
            for path, _, reason in chunk:
                if reason is not None:
                    check_worker_read(path, reason, engine)
            pending += chunk
            done += len(chunk)
            if len(pending) >= SAVE_EVERY:
                save()
            if on_progress:
                on_progress(done, len(by_path))
    finally:
        save()  # what arrived before an interruption is kept
    return catalog.image_hashes(full_key), catalog.image_hashes(centre_key)


def _exact_edges(images: list[ImageRecord]) -> list[Edge]:
    """Identical bytes (same sha256)."""
    by_sha: dict[str, list[int]] = defaultdict(list)
    for im in images:
        by_sha[im.sha256].append(im.id)
    return [Edge(ids[0], other, 0, "exact") for ids in by_sha.values() for other in ids[1:]]


def _find_edges(
    images: list[ImageRecord],
    full: dict,
    centre: dict,
    options: DedupOptions,
    run: DedupRun,
    progress_for: ProgressFor | None,
) -> list[Edge]:
    edges = _exact_edges(images)
    hashed = [im for im in images if im.id in full and im.id in centre]
    if len(hashed) < 2:
        return edges
    ids = np.array([im.id for im in hashed])
    h = hex_to_uint64([full[i][0] for i in ids])
    hm = hex_to_uint64([full[i][1] for i in ids])
    c = hex_to_uint64([centre[i][0] for i in ids])
    cm = hex_to_uint64([centre[i][1] for i in ids])
    loose = max(options.max_distance, options.verify_distance)
    t0 = time.perf_counter()
    fp = find_pairs(h, loose, mirror_hashes=hm)
    dc = distances(c, c, fp.i, fp.j, mirror_b=cm, mirror_a=cm)
    best = np.minimum(fp.distance, dc)
    direct = best <= options.max_distance
    grey = ~direct & (fp.distance <= loose) & (dc <= loose)
    cp = find_pairs(c, options.max_distance, mirror_hashes=cm)
    run.seconds["search"] = time.perf_counter() - t0
    # Candidates: (index a, index b, mirrored, distance, how, needs the structure check).
    # Every one gets the colour check (a hash sees grey levels only: flat images of
    # different colours sit at distance 0); grey-zone pairs also get the structure check.
    cands: list[tuple[int, int, bool, int, str, bool]] = []
    seen = set()
    for k in np.nonzero(direct)[0]:
        how = "hash" if fp.distance[k] <= options.max_distance else "centre"
        cands.append((int(fp.i[k]), int(fp.j[k]), bool(fp.mirrored[k]), int(best[k]), how, False))
        seen.add((fp.i[k], fp.j[k]))
    for a, b, d, mirrored in cp:
        if (a, b) not in seen:
            cands.append((int(a), int(b), bool(mirrored), int(d), "centre", False))
    if options.verify_distance > options.max_distance:
        for k in np.nonzero(grey)[0]:
            cands.append(
                (int(fp.i[k]), int(fp.j[k]), bool(fp.mirrored[k]), int(best[k]), "verified", True)
            )
    if not cands:
        return edges
    path_of = {im.id: im.path for im in hashed}
    t0 = time.perf_counter()
    scores = verify_pairs(
        ((path_of[int(ids[a])], path_of[int(ids[b])], m) for a, b, m, _, _, _ in cands),
        on_progress=_progress(progress_for, "checking pixels"),
        structure=[cand[5] for cand in cands],
    )
    run.seconds["verify"] = time.perf_counter() - t0
    for (a, b, _, d, how, structural), score in zip(cands, scores):
        if score is not None and score >= options.min_correlation:
            similarity = round(score, 4) if structural else None
            edges.append(Edge(int(ids[a]), int(ids[b]), d, how, similarity))
        else:
            run.rejected_by_pixels += 1
            run.rejected_by_colour += score == 0.0 and not structural
    return edges


def _embed_chunk(embedder, paths: list[str]):
    """One engine call: ``(paths embedded, vectors, unreadable)`` of a chunk of paths."""
    got = embedder.embed(paths)
    return got.paths, got.vectors, got.unreadable


def _ensure_embeddings(
    catalog,
    images: list[ImageRecord],
    run: DedupRun,
    progress_for: ProgressFor | None,
    embedder_factory: Callable[[], object] | None,
    engine,
) -> dict[int, np.ndarray]:
    """Embed the images without a stored embedding, one model per engine worker, in
    chunks of the embedder's batch size (so every engine sees the same batches);
    each chunk is stored as it arrives."""
    stored = catalog.image_embeddings(MODEL_KEY)
    todo = [im for im in images if im.id not in stored]
    run.embedded_cached = len(images) - len(todo)
    if todo:
        if embedder_factory is None:
            from .embeddings import Embedder

            embedder_factory = Embedder
        by_path = {im.path: im for im in todo}
        paths = list(by_path)
        chunks = [paths[i : i + EMBED_BATCH] for i in range(0, len(paths), EMBED_BATCH)]
        on_progress = _progress(progress_for, "embedding")
        done = 0
        for ok, vectors, unreadable in engine.map_with_model(
            embedder_factory, _embed_chunk, chunks, workers=run.options.workers
        ):
            for path, reason in unreadable:
                check_worker_read(path, reason, engine)
            catalog.save_image_embeddings(
                MODEL_KEY,
                [(by_path[p].id, by_path[p].sha256, to_bytes(v)) for p, v in zip(ok, vectors)],
            )
            for path, reason in unreadable:
                catalog.set_status([by_path[path].id], "unreadable", f"{REASON_PREFIX}: {reason}")
            run.unreadable += unreadable
            run.embedded_now += len(ok)
            done += len(ok) + len(unreadable)
            if on_progress:
                on_progress(done, len(paths))
        stored = catalog.image_embeddings(MODEL_KEY)
    return {i: from_bytes(b) for i, b in stored.items()}


def cnn_edges(
    ids: list[int], vectors: np.ndarray, min_cosine: float, on_progress=None
) -> list[Edge]:
    """Pairs of images whose embeddings are at least ``min_cosine`` alike. The distance
    is the cosine's loss in hundredths (0 for the same vector), so it orders like a
    hash distance."""
    if len(ids) < 2:
        return []
    pairs = find_cosine_pairs(vectors, min_cosine, on_progress=on_progress)
    return [
        Edge(
            ids[int(a)],
            ids[int(b)],
            int(round((1.0 - float(s)) * 100)),
            CNN,
            round(float(s), 4),
        )
        for a, b, s in zip(pairs.i, pairs.j, pairs.similarity)
    ]


def merge_edges(edges: list[Edge]) -> list[Edge]:
    """One edge per pair of images: a pair found several ways keeps the smallest
    distance and records every way (``how`` joined with ``+``, e.g. ``hash+cnn``)."""
    by_pair: dict[tuple[int, int], list[Edge]] = defaultdict(list)
    for e in edges:
        by_pair[(min(e.a, e.b), max(e.a, e.b))].append(e)
    out = []
    for (a, b), found in by_pair.items():
        hows = []
        for e in found:
            for h in e.how.split("+"):
                if h not in hows:
                    hows.append(h)
        sims = [e.similarity for e in found if e.similarity is not None]
        out.append(
            Edge(a, b, min(e.distance for e in found), "+".join(hows), max(sims) if sims else None)
        )
    return out


def _drop_distinct(
    edges: list[Edge], settled_distinct: list[DupGroup], run: DedupRun
) -> list[Edge]:
    """A person said these images are different: their pairs must not group them again."""
    apart = [set(g.image_ids) for g in settled_distinct if g.resolution == "distinct"]
    kept = []
    for e in edges:
        if any(e.a in s and e.b in s for s in apart):
            run.suppressed_distinct += 1
        else:
            kept.append(e)
    return kept


def apply_group(catalog, group: DupGroup, members: list[ImageRecord]) -> None:
    """Set member statuses and the kept image from the group's kind and resolution."""
    if group.resolution == "distinct":
        catalog.set_dup_keep(group.id, [])
        catalog.set_status(
            [m.id for m in members],
            "active",
            f"{REASON_PREFIX}: group {group.id} settled as distinct images",
        )
        return
    if group.kind == "conflict":
        labels = ", ".join(sorted({m.label or "(none)" for m in members}))
        catalog.set_dup_keep(group.id, [])
        catalog.set_status(
            [m.id for m in members],
            "conflict",
            f"{REASON_PREFIX}: group {group.id} has different labels ({labels})",
        )
        return
    kept = keeper(members)
    catalog.set_dup_keep(group.id, [kept.id])
    catalog.set_status([kept.id], "active", None)
    catalog.set_status(
        [m.id for m in members if m.id != kept.id],
        "duplicate",
        f"{REASON_PREFIX}: copy of image {kept.id} (group {group.id})",
    )


def find_duplicates(
    catalog,
    options: DedupOptions | None = None,
    progress_for: ProgressFor | None = None,
    embedder_factory: Callable[[], object] | None = None,
    engine: Engine | None = None,
) -> DedupRun:
    """Run the whole detection on the catalog and record groups and statuses.

    ``embedder_factory`` builds the embedder for ``cnn`` (default ``Embedder()``, the
    offline Lite0 weights); it is called only when some image has no stored embedding
    (on Ray, once per worker: it must pickle). ``engine`` (``workbench.engine``, default
    local) runs the hashing and embedding; the catalog is written here only.
    """
    engine = engine or open_engine()
    options = (options or DedupOptions()).validate()
    if options.cnn and embedder_factory is None:
        ok, why = weights_available()
        if not ok:
            raise EmbeddingWeightsMissing(
                f"--method {options.method} needs the EfficientNet-Lite0 ImageNet weights: "
                f"{why}; or use a hash method alone (--method {DEFAULT_METHOD})"
            )
    run = DedupRun(options)
    everything = catalog.images()
    if not everything:
        raise EmptyCatalog("the catalog has no images; add some with `wb ingest PATH` first")
    run.unreadable = [
        (im.path, im.status_reason or "unreadable")
        for im in everything
        if im.status == "unreadable"
    ]
    images = [im for im in everything if im.status in TAKING_PART and im.sha256]
    edges: list[Edge] = []
    if options.hash_method is not None:
        t0 = time.perf_counter()
        full, centre = _ensure_hashes(catalog, images, options, run, progress_for, engine)
        run.seconds["hashing"] = time.perf_counter() - t0
        fault_point("dedup.hashed")
        images = [im for im in images if im.id in full and im.id in centre]
        edges += _find_edges(images, full, centre, options, run, progress_for)
    else:
        edges += _exact_edges(images)
    if options.cnn:
        t0 = time.perf_counter()
        vectors = _ensure_embeddings(catalog, images, run, progress_for, embedder_factory, engine)
        run.seconds["embedding"] = time.perf_counter() - t0
        images = [im for im in images if im.id in vectors]
        t0 = time.perf_counter()
        ids = [im.id for im in images]
        matrix = np.stack([vectors[i] for i in ids]) if ids else np.zeros((0, 1))
        edges += cnn_edges(
            ids, matrix, options.min_cosine, _progress(progress_for, "cosine search")
        )
        run.seconds["cosine search"] = time.perf_counter() - t0
    ids_left = {im.id for im in images}
    edges = merge_edges([e for e in edges if e.a in ids_left and e.b in ids_left])
    run.images = len(images)
    by_id = {im.id: im for im in images}

    edges = _drop_distinct(edges, catalog.dup_groups(settled=True), run)
    for e in edges:
        run.pairs[e.how] = run.pairs.get(e.how, 0) + 1

    components = connected_components(edges)
    seen_keys = set()
    with catalog.atomic():
        for comp in components:
            members = [by_id[i] for i in comp]
            key = group_key(members)
            seen_keys.add(key)
            existing = catalog.dup_group_by_key(key)
            if existing is not None and existing.resolution == "label":
                # Settled: the label a person chose holds, even if a re-ingest changed it.
                for m in members:
                    if m.label != existing.resolved_label:
                        catalog.update_image(m.id, label=existing.resolved_label)
                        m.label = existing.resolved_label
            dist = member_distances(comp, edges)
            gid = catalog.save_dup_group(
                key,
                group_kind(members),
                [DupMember(i, False, dist.get(i)) for i in comp],
                method=options.method,
                max_distance=options.max_distance,
            )
            apply_group(catalog, catalog.dup_group(gid), members)
            run.group_ids.append(gid)
            fault_point("dedup.grouped")  # inside the transaction: all groups or none
        grouped = {i for comp in components for i in comp}
        stale = [g.id for g in catalog.dup_groups(settled=False) if g.group_key not in seen_keys]
        catalog.delete_dup_groups(stale)
        back = [
            im.id
            for im in images
            if im.id not in grouped
            and im.status != "active"
            and (im.status_reason or "").startswith(REASON_PREFIX)
        ]
        catalog.set_status(back, "active", None)
    log.info("dedup: %d images, %d groups, pairs %s", run.images, len(run.group_ids), run.pairs)
    return run
