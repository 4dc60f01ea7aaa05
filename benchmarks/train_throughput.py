"""Training throughput (images/s) of workbench's loop against a torchvision
references/detection-style loop: same model weights, same data, same batch size, one run.

Ours: ``workbench.detection.engine.train_one_epoch`` (meter-wrapped loader, loss checks,
warm-up hook) on the detector from ``create_detector`` (RoI heads with our probability
and loss hooks, CE loss). Baseline: the plain SGD loop of references/detection
(``model(images, targets)`` -> sum -> zero_grad/backward/step) on the same architecture
with torchvision's stock ``RoIHeads``. Both read the same ``DetectionDataset``; runs
alternate (A B A B ...) after a warm-up, and the medians are compared.

    .venv/bin/python benchmarks/train_throughput.py --backbone mobilenet_v3 --image-size 128
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torchvision.models.detection.roi_heads import RoIHeads

from workbench.catalog import Catalog
from workbench.detection.backbones import create_detector
from workbench.detection.dataset import DetectionDataset, collate, collect_samples
from workbench.detection.engine import MetricMeter, train_one_epoch
from workbench.detection.synthetic import add_synthetic_images
from workbench.detection.transforms import make_transforms
from workbench.taxonomy import Taxonomy

CLASSES = ["red", "blue", "green"]


def reference_train_one_epoch(model, optimizer, loader, device) -> int:
    """torchvision references/detection engine.train_one_epoch, minus its logger."""
    model.train()
    n = 0
    for images, targets in loader:
        images = [img.to(device) for img in images]
        targets = [
            {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in t.items()}
            for t in targets
        ]
        loss_dict = model(images, targets)
        losses = sum(loss for loss in loss_dict.values())
        optimizer.zero_grad()
        losses.backward()
        optimizer.step()
        n += len(images)
    return n


def stock_copy(model):
    m = copy.deepcopy(model)
    h = m.roi_heads
    m.roi_heads = RoIHeads(
        h.box_roi_pool,
        h.box_head,
        h.box_predictor,
        h.proposal_matcher.high_threshold,
        h.proposal_matcher.low_threshold,
        h.fg_bg_sampler.batch_size_per_image,
        h.fg_bg_sampler.positive_fraction,
        h.box_coder.weights,
        h.score_thresh,
        h.nms_thresh,
        h.detections_per_img,
    )
    return m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mobilenet_v3")
    ap.add_argument("--image-size", type=int, default=128)
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    tmp = Path(tempfile.mkdtemp(prefix="wb-bench-"))
    cat = Catalog.open(tmp / "catalog.sqlite")
    add_synthetic_images(cat, tmp / "img", CLASSES, args.images, size=args.image_size)
    samples = collect_samples(cat, Taxonomy.flat(CLASSES), CLASSES, "species").samples
    ds = DetectionDataset(samples, CLASSES, make_transforms(args.image_size, train=False))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=args.batch_size, shuffle=False, collate_fn=collate
    )

    torch.manual_seed(0)
    ours = create_detector(args.backbone, len(CLASSES) + 1, image_size=args.image_size).to(device)
    base = stock_copy(ours).to(device)
    opt_ours = torch.optim.SGD(ours.parameters(), lr=0.005, momentum=0.9)
    opt_base = torch.optim.SGD(base.parameters(), lr=0.005, momentum=0.9)

    def run_ours() -> float:
        ours.train()
        t = time.perf_counter()
        meter = train_one_epoch(ours, opt_ours, loader, device, 1, meter=MetricMeter(epoch=1))
        return meter.images / (time.perf_counter() - t)

    def run_base() -> float:
        t = time.perf_counter()
        n = reference_train_one_epoch(base, opt_base, loader, device)
        return n / (time.perf_counter() - t)

    run_ours(), run_base()  # warm-up: first touches of memory are slow here
    a, b = [], []
    for _ in range(args.rounds):
        a.append(run_ours())
        b.append(run_base())
    ours_ips, base_ips = statistics.median(a), statistics.median(b)
    print(
        f"device {device}, backbone {args.backbone}, {args.image_size}px, batch "
        f"{args.batch_size}, {args.images} images x {args.rounds} rounds, "
        f"{args.threads} threads"
    )
    print(f"workbench loop:      {ours_ips:.3f} images/s  (runs {[round(x, 3) for x in a]})")
    print(f"references loop:     {base_ips:.3f} images/s  (runs {[round(x, 3) for x in b]})")
    print(f"ratio (ours / references): {ours_ips / base_ips:.3f}")


if __name__ == "__main__":
    main()
