"""Hashing speed: `wb dedup`'s hashing against imagededup's and against decoding alone.

The 164 kangaroo photos are too few and too small, so the photo set is BUILT: N distinct
JPEGs derived from them (a random crop of 60-100 % per side, resized to a phone-like
long side of 1600-4000 px, JPEG quality 70-95) written to a temp dir. Then, on the same
files, with the same number of worker processes, in one run:

- decode-only: PIL full decode (``Image.open(p).load()``) in a process pool;
- imagededup: ``PHash().encode_images(dir, num_enc_workers=W)`` (one hash per image);
- ours: ``workbench.dedup.hashing.encode(paths, workers=W)`` (four hashes per image:
  full, mirror, centre, centre mirror).

The files are read once before timing, so all three read from the page cache. The
script also prints how far our whole-image hash lies from imagededup's (Hamming).

    .venv/bin/python benchmarks/dedup_hashing.py                 # 10,000 photos, 2 workers
    .venv/bin/python benchmarks/dedup_hashing.py --count 2000 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workbench.dedup.hashing import encode  # noqa: E402
from workbench.images import UnreadableImage, open_image  # noqa: E402

KANGAROO = REPO.parent / "shared" / "data" / "kangaroo" / "images"


def _derive(job: tuple[int, str, str, int]) -> str:
    """One derived phone-sized JPEG, a pure function of (index, source, seed)."""
    i, source, out_dir, seed = job
    rng = random.Random(seed * 1_000_003 + i)
    img = open_image(source)
    w, h = img.size
    cw, ch = int(w * rng.uniform(0.6, 1.0)), int(h * rng.uniform(0.6, 1.0))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    img = img.crop((x, y, x + cw, y + ch))
    long_side = rng.randint(1600, 4000)
    scale = long_side / max(cw, ch)
    img = img.resize((max(1, round(cw * scale)), max(1, round(ch * scale))), Image.BICUBIC)
    out = os.path.join(out_dir, f"photo_{i:06d}.jpg")
    img.save(out, quality=rng.randint(70, 95))
    return out


def build_photos(sources: list[Path], count: int, out_dir: Path, seed: int, workers: int):
    jobs = [(i, str(sources[i % len(sources)]), str(out_dir), seed) for i in range(count)]
    with Pool(workers) as pool:
        return sorted(pool.imap_unordered(_derive, jobs, chunksize=16))


def _decode(path: str) -> tuple[int, int]:
    with Image.open(path) as img:
        img.load()
        return img.size


def time_decode_only(paths: list[str], workers: int) -> float:
    t0 = time.perf_counter()
    with Pool(workers) as pool:
        for _ in pool.imap_unordered(_decode, paths, chunksize=16):
            pass
    return time.perf_counter() - t0


def time_imagededup(image_dir: Path, workers: int) -> tuple[float, dict]:
    from imagededup.methods import PHash

    t0 = time.perf_counter()
    hashes = PHash(verbose=False).encode_images(str(image_dir), num_enc_workers=workers)
    return time.perf_counter() - t0, hashes


def time_ours(paths: list[str], workers: int):
    t0 = time.perf_counter()
    result = encode(paths, workers=workers)
    return time.perf_counter() - t0, result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=KANGAROO, help="source photos")
    ap.add_argument("--count", type=int, default=10_000, help="photos to build")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()
    sources = []
    for p in sorted(args.images.glob("*.jpg")):
        try:
            open_image(p).close()
            sources.append(p)
        except UnreadableImage:
            pass  # the truncated source is left out of the built set
    if not sources:
        sys.exit(f"no readable photos at {args.images}")
    with tempfile.TemporaryDirectory() as tmp:
        photos_dir = Path(tmp) / "photos"
        photos_dir.mkdir()
        t0 = time.perf_counter()
        paths = build_photos(sources, args.count, photos_dir, args.seed, args.workers)
        sizes = [_decode(p) for p in paths[:: max(1, len(paths) // 200)]]
        mpix = float(np.mean([w * h for w, h in sizes])) / 1e6
        nbytes = sum(os.path.getsize(p) for p in paths)  # also reads them into the cache
        for p in paths:
            with open(p, "rb") as fh:
                fh.read()
        print(
            f"built {len(paths)} distinct JPEGs derived from {len(sources)} kangaroo photos "
            f"(random crops, long side 1600-4000 px, quality 70-95; mean {mpix:.1f} MP, "
            f"{nbytes / 1e9:.2f} GB) in a temp dir in {time.perf_counter() - t0:.0f} s"
        )
        decode_s = time_decode_only(paths, args.workers)
        dedup_s, theirs = time_imagededup(photos_dir, args.workers)
        ours_s, ours = time_ours(paths, args.workers)
        n = len(paths)
        rate = {
            "decode_only": n / decode_s,
            "imagededup_phash": n / dedup_s,
            "ours": n / ours_s,
        }
        dist = [
            bin(int(theirs[Path(p).name], 16) ^ int(ours.hashes[p], 16)).count("1")
            for p in paths
            if Path(p).name in theirs and p in ours.hashes
        ]
        print(f"{args.workers} worker processes each; machine shared with other work")
        print(f"{'':28} {'seconds':>8} {'images/s':>9}")
        for name, secs in (
            ("decode-only (PIL full)", decode_s),
            ("imagededup PHash (1 hash)", dedup_s),
            ("ours (4 hashes)", ours_s),
        ):
            print(f"{name:28} {secs:8.1f} {n / secs:9.1f}")
        ratios = {
            "ours_vs_imagededup": rate["ours"] / rate["imagededup_phash"],
            "ours_vs_decode_only": rate["ours"] / rate["decode_only"],
            "imagededup_vs_decode_only": rate["imagededup_phash"] / rate["decode_only"],
        }
        for k, v in ratios.items():
            print(f"{k:28} {v:.2f}x")
        hist = np.bincount(dist, minlength=5).tolist() if dist else []
        print(
            f"whole-image hash, ours vs imagededup's, Hamming distance counts 0,1,2,...: "
            f"{hist} ({len(dist)} images; unreadable ours {len(ours.unreadable)}, "
            f"missing in imagededup {n - len(theirs)})"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "images": n,
                        "workers": args.workers,
                        "mean_megapixels": round(mpix, 2),
                        "images_per_s": {k: round(v, 1) for k, v in rate.items()},
                        "ratios": {k: round(v, 2) for k, v in ratios.items()},
                        "hamming_ours_vs_imagededup": hist,
                        "note": "built set in a temp dir; machine shared with other work",
                    },
                    indent=1,
                )
            )


if __name__ == "__main__":
    main()
