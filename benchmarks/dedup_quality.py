"""Recall and precision of `wb dedup` on copies planted in real photos.

Every readable kangaroo photo (../shared/data/kangaroo) gets one copy of each kind
(resized, re-encoded, cropped 0-6 % per side, brightened, grayscale, text banner,
mirrored); every 5th copy is filed under a second class (a conflict). The tree is
ingested into a fresh workspace and `wb dedup`'s detection runs on it.

- recall: planted (original, copy) pairs that end up in the same group;
- precision: pairs of images placed in one group that come from the same photo.
  The kangaroo set itself holds real duplicates (00007/00033: the same photo twice);
  two originals grouped together count as true when their pixel check scores
  >= 0.97 (the script prints them so a person can look; 00007/00033 was checked by eye).

    .venv/bin/python benchmarks/dedup_quality.py            # default settings
    .venv/bin/python benchmarks/dedup_quality.py --sweep    # also other thresholds
    .venv/bin/python benchmarks/dedup_quality.py --cnn --limit 60   # + crop15/reframed/
        rotated copies, and --method cnn and phash,cnn next to phash
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workbench.dedup.planting import COPY_KINDS, HARD_KINDS, plant_copies  # noqa: E402
from workbench.dedup.run import DedupOptions, find_duplicates  # noqa: E402
from workbench.dedup.verify import _grey, pixel_similarity  # noqa: E402
from workbench.ingest import ingest  # noqa: E402
from workbench.taxonomy import Taxonomy  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

KANGAROO = REPO.parent / "shared" / "data" / "kangaroo" / "images"


def score(catalog, planted, run, real_dups: dict) -> dict:
    path_of = {im.id: im.path for im in catalog.images()}
    group_of = {}
    groups = [catalog.dup_group(g) for g in run.group_ids]
    for g in groups:
        for i in g.image_ids:
            group_of[path_of[i]] = g.id
    source = planted.source_of()
    found = defaultdict(list)
    for c in planted.copies:
        found[c.kind].append(
            group_of.get(c.copy) is not None and group_of.get(c.copy) == group_of.get(c.original)
        )
    tp = fp = 0
    false_pairs = []
    for g in groups:
        for a, b in itertools.combinations(sorted(path_of[i] for i in g.image_ids), 2):
            sa, sb = source.get(a, a), source.get(b, b)
            if sa == sb:
                tp += 1
            else:
                # two different source photos in one group: is it a real duplicate pair?
                key = frozenset((sa, sb))
                if key not in real_dups["scores"]:
                    real_dups["scores"][key] = pixel_similarity(_grey(sa), _grey(sb))
                if real_dups["scores"][key] >= 0.97:
                    tp += 1
                else:
                    fp += 1
                    false_pairs.append((a, b))
    all_found = [x for v in found.values() for x in v]
    return {
        "recall": sum(all_found) / len(all_found),
        "per_kind": {k: sum(v) / len(v) for k, v in found.items()},
        "precision": tp / max(1, tp + fp),
        "true_pairs": tp,
        "false_pairs": fp,
        "false_examples": false_pairs[:5],
    }


def index_on_real_embeddings(catalog) -> None:
    """The clustered index (which `wb dedup` takes from INDEX_FROM embeddings) forced on
    these real photos' embeddings, against the exact product."""
    from workbench.dedup.embeddings import INDEX_FROM, MODEL_KEY, find_cosine_pairs, from_bytes

    stored = catalog.image_embeddings(MODEL_KEY)
    v = np.stack([from_bytes(b) for b in stored.values()])
    for t in (0.80, 0.90):
        exact = find_cosine_pairs(v, t, index=False)
        index = find_cosine_pairs(v, t, index=True)
        ex = set(zip(exact.i.tolist(), exact.j.tolist()))
        ix = set(zip(index.i.tolist(), index.j.tolist()))
        print(
            f"clustered index forced on these {len(v):,} embeddings (wb takes it from "
            f"{INDEX_FROM:,}), min cosine {t}: {len(ix & ex):,} of the exact product's "
            f"{len(ex):,} pairs (recall {len(ix & ex) / max(1, len(ex)):.4f}), "
            f"{len(ix - ex)} not in it"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=KANGAROO)
    ap.add_argument("--sweep", action="store_true", help="also try other thresholds")
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument(
        "--cnn", action="store_true", help="also hard copies, and methods cnn and phash,cnn"
    )
    ap.add_argument("--limit", type=int, default=None, help="use the first N photos only")
    args = ap.parse_args()
    kinds = COPY_KINDS + (HARD_KINDS if args.cnn else ())
    if not args.images.is_dir():
        sys.exit(f"no photos at {args.images}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        planted = plant_copies(
            sorted(args.images.glob("*.jpg"))[: args.limit], tmp / "planted", kinds=kinds
        )
        print(
            f"planted {len(planted.copies)} copies of {len(planted.originals)} photos "
            f"({len(planted.unreadable)} unreadable source kept as is) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        ws = Workspace.create(tmp / "ws", Taxonomy.flat(["kangaroo", "wallaby"]))
        with ws.open_catalog() as catalog:
            ingest(ws, catalog, tmp / "planted", "folders")
            settings = [DedupOptions(workers=args.workers)]
            if args.sweep:
                settings += [
                    DedupOptions(max_distance=d, verify_distance=0) for d in (4, 6, 8, 10, 12)
                ]
                settings += [DedupOptions(max_distance=d) for d in (4, 8)]
                settings += [DedupOptions(method=m) for m in ("dhash", "whash", "ahash")]
            if args.cnn:
                settings += [DedupOptions(method=m) for m in ("cnn", "phash,cnn")]
            real_dups: dict = {"scores": {}}
            print(
                f"{'method':9} {'max_d':>5} {'verify':>6} {'recall':>6} {'prec':>6} {'false':>5}  "
                + " ".join(f"{k[:6]:>6}" for k in kinds)
                + "   seconds"
            )
            for opt in settings:
                t0 = time.perf_counter()
                run = find_duplicates(catalog, opt)
                dt = time.perf_counter() - t0
                s = score(catalog, planted, run, real_dups)
                print(
                    f"{opt.method:9} {opt.max_distance:>5} {opt.verify_distance:>6} "
                    f"{s['recall']:6.3f} {s['precision']:6.4f} {s['false_pairs']:>5}  "
                    + " ".join(f"{s['per_kind'][k]:6.3f}" for k in kinds)
                    + f"   {dt:.1f} (hash {run.seconds.get('hashing', 0):.1f}, "
                    f"pixels {run.seconds.get('verify', 0):.1f}, "
                    f"embed {run.seconds.get('embedding', 0):.1f})"
                )
                for a, b in s["false_examples"][:3]:
                    print(f"    false pair: {Path(a).name} ~ {Path(b).name}")
            if args.cnn:
                index_on_real_embeddings(catalog)
            real = [
                (sorted(Path(p).name for p in k), round(v, 3))
                for k, v in real_dups["scores"].items()
                if v >= 0.97
            ]
            print(f"real duplicates inside the source set (pixel check >= 0.97): {real}")


if __name__ == "__main__":
    main()
