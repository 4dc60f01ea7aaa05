"""Is the built-in demo data learnable? Train a small detector from scratch on CPU.

Generates the demo data, trains torchvision's fasterrcnn_mobilenet_v3_large_320_fpn
(no pretrained weights) at species level for a fixed wall-clock budget, and prints
mAP@0.5 (pycocotools) on a held-out 20%. Planted copies (duplicates, conflicts) are
left out so that no test picture has a twin in training.

    .venv/bin/python benchmarks/demo_learnability.py --minutes 4
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import random
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from torchvision.models.detection import fasterrcnn_mobilenet_v3_large_320_fpn
from torchvision.transforms.functional import pil_to_tensor

from workbench.demo_data import generate_demo_data
from workbench.taxonomy import Taxonomy

log = logging.getLogger("demo_learnability")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=4.0, help="training wall-clock budget")
    p.add_argument("--n-images", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument(
        "--rois",
        type=int,
        default=64,
        help="RoIs sampled per image in training (torchvision's 512 makes the box head "
        "dominate the step on CPU; 64 is ~4x faster per step)",
    )
    p.add_argument("--steps", type=int, default=None, help="also stop after this many steps")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default="sgd")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--dump",
        type=Path,
        default=None,
        help="write ground truth and detections here, skip scoring",
    )
    p.add_argument(
        "--data", type=Path, default=None, help="reuse/generate the data here (default: a temp dir)"
    )
    return p


def load_split(data_dir: Path, seed: int):
    """(train, test) lists of (path, boxes xyxy tensor, species-index labels tensor)."""
    tax = Taxonomy.default()
    species = tax.classes("species")
    coco = json.loads((data_dir / "annotations.json").read_text())
    planted = json.loads((data_dir / "planted.json").read_text())
    copies = {pair[1] for key in planted for pair in planted[key]}
    cat_species = {
        c["id"]: species.index(tax.species_of(c["name"])) + 1 for c in coco["categories"]
    }
    boxes: dict[int, list] = {}
    for a in coco["annotations"]:
        boxes.setdefault(a["image_id"], []).append(a)
    items = []
    for im in coco["images"]:
        if im["file_name"] in copies:
            continue
        anns = boxes.get(im["id"], [])
        xyxy = torch.tensor(
            [
                [
                    a["bbox"][0],
                    a["bbox"][1],
                    a["bbox"][0] + a["bbox"][2],
                    a["bbox"][1] + a["bbox"][3],
                ]
                for a in anns
            ],
            dtype=torch.float32,
        ).reshape(-1, 4)
        labels = torch.tensor([cat_species[a["category_id"]] for a in anns], dtype=torch.int64)
        items.append((data_dir / im["file_name"], xyxy, labels))
    random.Random(seed).shuffle(items)
    n_test = len(items) // 5
    return items[n_test:], items[:n_test], species


def load_image(path: Path) -> torch.Tensor:
    return pil_to_tensor(Image.open(path).convert("RGB")).float() / 255


def hflip(img: torch.Tensor, boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    w = img.shape[-1]
    b = boxes.clone()
    b[:, [0, 2]] = w - boxes[:, [2, 0]]
    return img.flip(-1), b


def train(model, train_items, args) -> int:
    minutes, batch_size, lr, seed = args.minutes, args.batch_size, args.lr, args.seed
    params = [p for p in model.parameters() if p.requires_grad]
    if args.optimizer == "adamw":
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    else:
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    warmup = 50
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: min(1.0, (i + 1) / warmup))
    dev = torch.device(args.device)
    cache = {p: load_image(p).to(dev) for p, _, _ in train_items}
    rng = random.Random(seed)
    model.train()
    deadline = time.monotonic() + minutes * 60
    step = 0
    max_steps = args.steps or float("inf")
    while time.monotonic() < deadline and step < max_steps:
        order = list(range(len(train_items)))
        rng.shuffle(order)
        for start in range(0, len(order) - batch_size + 1, batch_size):
            if time.monotonic() >= deadline or step >= max_steps:
                break
            images, targets = [], []
            for i in order[start : start + batch_size]:
                path, boxes, labels = train_items[i]
                img = cache[path]
                if rng.random() < 0.5:
                    img, boxes = hflip(img, boxes)
                images.append(img)
                targets.append({"boxes": boxes.to(dev), "labels": labels.to(dev)})
            losses = model(images, targets)
            loss = sum(losses.values())
            if not torch.isfinite(loss):
                raise FloatingPointError(f"loss is {loss.item()} at step {step}: lower --lr")
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 25 == 0:
                log.info(
                    "step %d loss %.3f (%s)",
                    step,
                    loss.item(),
                    " ".join(f"{k[5:]}={v.item():.3f}" for k, v in losses.items()),
                )
    return step


@torch.inference_mode()
def predict(model, test_items, species: list[str], device: str = "cpu") -> tuple[dict, list[dict]]:
    """COCO ground truth and detections on the held-out images."""
    model.eval()
    gt = {
        "images": [],
        "annotations": [],
        "categories": [{"id": i + 1, "name": s} for i, s in enumerate(species)],
    }
    dets = []
    for img_id, (path, boxes, labels) in enumerate(test_items, start=1):
        img = load_image(path)
        gt["images"].append({"id": img_id, "width": img.shape[-1], "height": img.shape[-2]})
        for b, lab in zip(boxes.tolist(), labels.tolist()):
            gt["annotations"].append(
                {
                    "id": len(gt["annotations"]) + 1,
                    "image_id": img_id,
                    "category_id": lab,
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                    "area": (b[2] - b[0]) * (b[3] - b[1]),
                    "iscrowd": 0,
                }
            )
        out = model([img.to(device)])[0]
        for b, s, lab in zip(out["boxes"].tolist(), out["scores"].tolist(), out["labels"].tolist()):
            dets.append(
                {
                    "image_id": img_id,
                    "category_id": lab,
                    "score": s,
                    "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                }
            )
    return gt, dets


def ap50(gt: dict, dets: list[dict]) -> float:
    """COCO mAP@0.5 (pycocotools, the reference implementation)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    if not dets:
        return 0.0
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        ev = COCOeval(coco_gt, coco_gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])


def main(args) -> float:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = args.data or Path(tmp)
        t0 = time.monotonic()
        summary = generate_demo_data(data_dir, seed=args.seed, n_images=args.n_images)
        gen_s = time.monotonic() - t0
        train_items, test_items, species = load_split(data_dir, args.seed)
        # native 320x240 frames: no upscaling inside the model
        model = fasterrcnn_mobilenet_v3_large_320_fpn(
            weights=None,
            weights_backbone=None,
            num_classes=len(species) + 1,
            min_size=240,
            max_size=320,
            box_score_thresh=0.001,
            box_batch_size_per_image=args.rois,
        )
        t1 = time.monotonic()
        model.to(args.device)
        steps = train(model, train_items, args)
        train_s = time.monotonic() - t1
        t2 = time.monotonic()
        gt, dets = predict(model, test_items, species, args.device)
        if args.dump:
            args.dump.write_text(json.dumps({"gt": gt, "dets": dets}))
        ap = ap50(gt, dets) if not args.dump else float("nan")
        eval_s = time.monotonic() - t2
    print(
        f"demo data: {summary.n_images} images ({len(train_items)} train / {len(test_items)} held out, "
        f"planted copies left out), generated in {gen_s:.1f} s"
    )
    print(
        f"trained {steps} steps x batch {args.batch_size} in {train_s / 60:.1f} min on "
        f"{args.threads} threads; evaluated in {eval_s:.0f} s"
    )
    print(f"species-level mAP@0.5 on held-out images: {ap:.3f}")
    return ap


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    main(get_args_parser().parse_args())
