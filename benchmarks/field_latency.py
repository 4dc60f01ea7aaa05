"""The field app's latency: ``POST /v1/detect`` over real HTTP on 127.0.0.1 against
calling the model directly on the same photo.

One phone-sized JPEG (default 2016x1512, EXIF orientation 6 and a GPS block, as phones
write them) is (a) uploaded to the service, multipart, with a device token: the whole
request, i.e. upload, checks, decoding, turning upright, the forward pass, re-encoding
without GPS, storing and cataloging; and (b) decoded from the same bytes and turned
upright (``decode_image_bytes`` + ``exif_transpose`` + RGB) then ``Predictor.predict``
-- interleaved in the same run. The model is the default backbone at its default input
size, untrained (latency does not depend on what the weights learned).

With ``--runtime onnx`` the same photo also goes through ONNX Runtime: the model (then
with the backbone's ImageNet weights, so that its scores are not all tied and the export
check can match boxes) is exported by ``export_onnx`` as `wb models export` does, and
four paths are timed interleaved: direct torch, direct ONNX Runtime, and `/v1/detect`
served by each; then the ONNX/torch ratios and whether the photo's boxes match.

    .venv/bin/python benchmarks/field_latency.py --quick                 # ~1-2 min
    .venv/bin/python benchmarks/field_latency.py --quick --runtime onnx  # ~3 min
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def phone_photo(width: int, height: int, seed: int = 0) -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    arr = rng.integers(60, 160, size=(height, width, 3), dtype=np.uint8)
    arr[height // 4 : height // 2, width // 3 : width // 2] = (200, 60, 40)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2] = "N", (48.0, 51.0, 24.0)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, exif=exif.tobytes())
    return buf.getvalue()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--backbone", default=None, help="default: the training default")
    ap.add_argument("--image-size", type=int, default=None, help="default: the backbone's")
    ap.add_argument("--photo", default="2016x1512", help="WIDTHxHEIGHT of the JPEG sent")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (shared machine)")
    ap.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="onnx: torch and ONNX Runtime side by side (same threads, same photo)",
    )
    args = ap.parse_args(argv)
    if args.runtime == "onnx":
        return compare_runtimes(args)

    import httpx
    import torch
    from PIL import ImageOps

    from workbench.backend import BackendSettings, ModelHolder, create_app, running
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.detection.names import DEFAULT_BACKBONE
    from workbench.detection.predict import Predictor
    from workbench.detection.train import default_image_size
    from workbench.field import FieldSettings, field_router
    from workbench.field.tokens import add_device
    from workbench.images import decode_image_bytes, to_rgb
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(args.threads)
    backbone = args.backbone or DEFAULT_BACKBONE
    image_size = args.image_size or default_image_size(backbone)
    width, height = (int(v) for v in args.photo.lower().split("x"))
    repeats = 12 if args.quick else 40
    data = phone_photo(width, height)
    classes = ["ivory", "scale", "claw"]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.create(Path(tmp) / "ws", Taxonomy.flat(classes))
        with ws.open_catalog() as catalog:
            version = register_untrained_model(
                ws, catalog, classes, image_size=image_size, backbone=backbone, promote=True
            )
            token = add_device(catalog, "bench")
        direct = Predictor(ws.models_dir / version)
        holder = ModelHolder.for_workspace(ws, ws.open_catalog, poll_seconds=2.0)
        holder.current()
        app = create_app(holder, ws.open_catalog, BackendSettings(taxonomy=ws.taxonomy))
        app.include_router(
            field_router(
                holder,
                ws.open_catalog,
                FieldSettings(photos_dir=ws.field_photos_dir, taxonomy=ws.taxonomy),
            )
        )

        def call_direct():
            img = to_rgb(ImageOps.exif_transpose(decode_image_bytes(data)))
            return direct.predict([img])

        print(
            f"model {version}: {backbone} at {image_size} px, untrained, {args.threads} torch "
            f"thread(s); photo {width}x{height} JPEG ({len(data) / 1e6:.1f} MB), EXIF "
            f"orientation 6 + GPS; {repeats} repeats"
        )
        t_service, t_direct = [], []
        headers = {"Authorization": f"Bearer {token}"}
        with running(app) as url, httpx.Client(base_url=url, timeout=300) as http:

            def call_service():
                r = http.post(
                    "/v1/detect", files={"image": ("p.jpg", data, "image/jpeg")}, headers=headers
                )
                if r.status_code != 200:
                    raise SystemExit(f"service failed: {r.status_code} {r.text[:300]}")
                return r.json()

            call_direct(), call_service()  # warm both
            for _ in range(repeats):
                t0 = time.perf_counter()
                call_direct()
                t1 = time.perf_counter()
                call_service()
                t2 = time.perf_counter()
                t_direct.append(t1 - t0)
                t_service.append(t2 - t1)

    print(f"\n{'path':<34} {'p50 ms':>8} {'p95 ms':>8} {'photos/s':>9}")
    for name, ts in (("/v1/detect (HTTP, stores)", t_service), ("direct decode+predict", t_direct)):
        ms = [t * 1000 for t in ts]
        print(
            f"{name:<34} {statistics.median(ms):>8.1f} {percentile(ms, 95):>8.1f} "
            f"{len(ts) / sum(ts):>9.2f}"
        )
    ratio = statistics.median(t_service) / statistics.median(t_direct)
    extra = 1000 * (statistics.median(t_service) - statistics.median(t_direct))
    print(f"\n/v1/detect p50 / direct p50: {ratio:.3f} ({extra:+.0f} ms per photo)")
    return 0


def _row(name: str, ts: list[float]) -> str:
    ms = [t * 1000 for t in ts]
    return (
        f"{name:<34} {statistics.median(ms):>8.1f} {percentile(ms, 95):>8.1f} "
        f"{len(ts) / sum(ts):>9.2f}"
    )


def compare_runtimes(args) -> int:
    """torch and ONNX Runtime on the same photo: direct calls and `/v1/detect`."""
    import httpx
    import torch
    from PIL import ImageOps

    from workbench.backend import BackendSettings, ModelHolder, create_app, running
    from workbench.backend.tiny_models import register_untrained_model
    from workbench.detection.names import DEFAULT_BACKBONE
    from workbench.detection.onnx import OnnxPredictor, compare_detections, export_onnx
    from workbench.detection.predict import Predictor
    from workbench.detection.registry import Registry
    from workbench.detection.train import default_image_size
    from workbench.field import FieldSettings, field_router
    from workbench.field.tokens import add_device
    from workbench.images import decode_image_bytes, to_rgb
    from workbench.taxonomy import Taxonomy
    from workbench.workspace import Workspace

    torch.set_num_threads(args.threads)
    backbone = args.backbone or DEFAULT_BACKBONE
    image_size = args.image_size or default_image_size(backbone)
    width, height = (int(v) for v in args.photo.lower().split("x"))
    repeats = 12 if args.quick else 40
    data = phone_photo(width, height)
    classes = ["ivory", "scale", "claw"]
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.create(Path(tmp) / "ws", Taxonomy.flat(classes))
        with ws.open_catalog() as catalog:
            version = register_untrained_model(
                ws,
                catalog,
                classes,
                image_size=image_size,
                backbone=backbone,
                promote=True,
                weights="imagenet",
            )
            token = add_device(catalog, "bench")
            report = export_onnx(Registry.of(ws, catalog), version)
        print(
            f"model {version}: {backbone} at {image_size} px (ImageNet backbone, random "
            f"heads), {args.threads} thread(s) in both runtimes; photo {width}x{height} JPEG "
            f"({len(data) / 1e6:.1f} MB), EXIF orientation 6 + GPS; {repeats} repeats\n"
            f"exported in {report.seconds:.1f} s ({report.size_bytes / 1e6:.1f} MB, opset "
            f"{report.opset}); checked on {report.images} images, {report.boxes} boxes, "
            f"lowest IoU {report.min_iou:.4f}, largest score difference "
            f"{report.max_score_diff:.1g}"
        )
        folder = ws.models_dir / version
        direct = {"torch": Predictor(folder), "onnx": OnnxPredictor(folder)}
        photo = to_rgb(ImageOps.exif_transpose(decode_image_bytes(data)))
        same = compare_detections(
            "the photo", direct["torch"].predict([photo])[0], direct["onnx"].predict([photo])[0]
        )
        print(
            f"on the photo: {same.expected} boxes from torch, {same.got} from ONNX Runtime, "
            f"lowest IoU {same.min_iou or 0:.4f}, largest score difference "
            f"{same.max_score_diff:.1g}; "
            + ("same boxes" if not same.problems else f"DIFFERENT: {same.problems[:3]}")
        )

        def service(runtime: str):
            holder = ModelHolder.for_workspace(ws, ws.open_catalog, runtime=runtime)
            holder.current()
            app = create_app(holder, ws.open_catalog, BackendSettings(taxonomy=ws.taxonomy))
            app.include_router(
                field_router(
                    holder,
                    ws.open_catalog,
                    FieldSettings(photos_dir=ws.field_photos_dir, taxonomy=ws.taxonomy),
                )
            )
            return app

        headers = {"Authorization": f"Bearer {token}"}
        times: dict[str, list[float]] = {}
        with (
            running(service("torch")) as url_torch,
            running(service("onnx")) as url_onnx,
            httpx.Client(timeout=300) as http,
        ):
            calls = {}
            for runtime, predictor in direct.items():
                calls[f"direct {runtime}"] = lambda p=predictor: p.predict(
                    [to_rgb(ImageOps.exif_transpose(decode_image_bytes(data)))]
                )
            for runtime, url in (("torch", url_torch), ("onnx", url_onnx)):

                def call(url=url):
                    r = http.post(
                        f"{url}/v1/detect",
                        files={"image": ("p.jpg", data, "image/jpeg")},
                        headers=headers,
                    )
                    if r.status_code != 200:
                        raise SystemExit(f"service failed: {r.status_code} {r.text[:300]}")

                calls[f"/v1/detect {runtime}"] = call
            for fn in calls.values():  # warm each
                fn()
            for _ in range(repeats):
                for name, fn in calls.items():
                    t0 = time.perf_counter()
                    fn()
                    times.setdefault(name, []).append(time.perf_counter() - t0)

    print(f"\n{'path':<34} {'p50 ms':>8} {'p95 ms':>8} {'photos/s':>9}")
    for name, ts in times.items():
        print(_row(name, ts))
    print()
    for what in ("direct", "/v1/detect"):
        t, o = times[f"{what} torch"], times[f"{what} onnx"]
        print(
            f"{what}: onnx/torch p50 {statistics.median(o) / statistics.median(t):.3f}, "
            f"p95 {percentile(o, 95) / percentile(t, 95):.3f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
