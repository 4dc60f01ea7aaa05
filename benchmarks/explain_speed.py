"""`wb explain` speed: EigenCAM per image against a plain prediction, side by side.

The default model (efficientnet_lite0 at 320 px, its packaged ImageNet weights; the box
head untrained: the time does not depend on what it learned) is registered in a scratch
workspace and loaded once as ``Predictor``. On each photo, interleaved in the same run:

- ``predict``: ``Predictor.predict([image])``, what `wb retrain` and `wb serve` run;
- ``eigencam``: ``Explainer.explain(image)``, the boxes and their heatmap (one forward pass
  through the model with the library's hooks, the map's SVD, the crop and resize);
- with ``--gradcam``, also Grad-CAM on ``--boxes`` boxes per image (a pass per box).

Per method the median seconds per image, and the ratio to ``predict`` (the aim: EigenCAM
within 2x). Pictures and the contact sheet are not in the timing (writing PNGs is
``--pictures``' own line).

    .venv/bin/python benchmarks/explain_speed.py                 # 8 kangaroo photos, ~1 min
    .venv/bin/python benchmarks/explain_speed.py --images 16 --gradcam
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
ROOT = Path(__file__).resolve().parent.parent


def photos(n: int, scratch: Path) -> tuple[list[Path], str]:
    import os

    folder = Path(os.environ.get("WB_SHARED_DIR", ROOT.parent / "shared")) / "data"
    kangaroo = folder / "kangaroo" / "images"
    if kangaroo.is_dir():
        return sorted(kangaroo.glob("*.jpg"))[:n], f"kangaroo photos ({kangaroo})"
    from workbench.demo_data import generate_demo_data

    generate_demo_data(scratch / "demo", seed=0, n_images=max(n, 20))
    return sorted((scratch / "demo").rglob("*.jpg"))[:n], "wb demo-data photos"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per photo and method")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (shared machine)")
    ap.add_argument("--gradcam", action="store_true", help="also time Grad-CAM per box")
    ap.add_argument("--boxes", type=int, default=3, help="boxes per image for --gradcam")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/explain_speed_cpu.json"))
    args = ap.parse_args(argv)

    import torch

    from workbench.detection.backbones import default_image_size
    from workbench.detection.names import DEFAULT_BACKBONE
    from workbench.detection.predict import Predictor
    from workbench.detection.registry import Registry
    from workbench.detection.train import TrainConfig, build_model
    from workbench.explain.cam import Explainer
    from workbench.images import open_image
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="explain-speed-") as tmp:
        tmp = Path(tmp)
        paths, source = photos(args.images, tmp)
        ws = Workspace.create(tmp / "ws", Taxonomy.flat(["kangaroo"]))
        config = TrainConfig(backbone=DEFAULT_BACKBONE, weights="imagenet")
        torch.manual_seed(0)
        model = build_model(config, ["kangaroo"])
        # an untrained head scores everything alike; this makes it find boxes to explain
        model.roi_heads.box_predictor.cls_score.bias.data[:] = torch.tensor([-2.0, 2.0])
        torch.save(model.state_dict(), tmp / "w.pt")
        with ws.open_catalog() as catalog:
            mv = Registry.of(ws, catalog).register(
                tmp / "w.pt", config.to_dict(), ["kangaroo"], "species", {}, {}
            )
        predictor = Predictor(mv.path, device="cpu")
        eigencam = Explainer(predictor, "eigencam")
        methods = {"predict": lambda im: predictor.predict([im]), "eigencam": eigencam.explain}
        if args.gradcam:
            gp = Predictor(mv.path, device="cpu")
            gp.model.roi_heads.detections_per_img = args.boxes
            methods[f"gradcam ({args.boxes} boxes)"] = Explainer(gp, "gradcam").explain
        images = [open_image(p) for p in paths]
        for fn in methods.values():  # warm up
            fn(images[0])
        times: dict[str, list[float]] = {name: [] for name in methods}
        boxes = []
        for im in images:
            for _ in range(args.repeats):
                for name, fn in methods.items():
                    t = time.perf_counter()
                    out = fn(im)
                    times[name].append(time.perf_counter() - t)
                    if name == "eigencam":
                        boxes.append(len(out))
        med = {name: statistics.median(v) for name, v in times.items()}
        ratio = {name: med[name] / med["predict"] for name in methods}
        sizes = sorted({im.size for im in images})
        print(
            f"{DEFAULT_BACKBONE} at {predictor.config.image_size or default_image_size(DEFAULT_BACKBONE)} px (ImageNet body, untrained head), "
            f"{args.threads} torch thread(s); {len(images)} {source}, sizes {sizes[0]}..{sizes[-1]}; "
            f"{args.repeats} runs each, interleaved; eigencam boxes per image (score >= 0.3): "
            f"median {statistics.median(boxes):.0f}"
        )
        print(f"{'method':<22}{'median s/image':>16}{'x predict':>11}")
        for name in methods:
            print(f"{name:<22}{med[name]:>16.3f}{ratio[name]:>11.2f}")
        goal = ratio["eigencam"] <= 2.0
        print(
            f"EigenCAM / plain prediction: {ratio['eigencam']:.2f} (goal <= 2: {'met' if goal else 'NOT met'})"
        )
        result = {
            "backbone": DEFAULT_BACKBONE,
            "threads": args.threads,
            "images": len(images),
            "source": source,
            "repeats": args.repeats,
            "median_seconds": {k: round(v, 4) for k, v in med.items()},
            "ratio_to_predict": {k: round(v, 3) for k, v in ratio.items()},
            "goal_met": goal,
            "command": "python benchmarks/explain_speed.py " + " ".join(argv or sys.argv[1:]),
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        print(f"written {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
