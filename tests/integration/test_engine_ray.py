"""The Ray engine on a real 2-node cluster (a head and a worker node on 127.0.0.1, each
one CPU, started and stopped by PID here): dedup's hashes and embeddings and a real
detector's predictions come out identical to the local engine's; a folder the worker
node cannot see is named in the error and marks nothing unreadable."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageOps

pytest.importorskip("ray", reason="Ray is not installed: pip install 'workbench[ray]'")

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "unit"))
from prioritize_cases import CLASSES, add_image, draw  # noqa: E402
from ray_cluster import RayCluster, can_hide_folders  # noqa: E402

from workbench.cli import cli  # noqa: E402
from workbench.dedup.embeddings import MODEL_KEY, weights_available  # noqa: E402
from workbench.dedup.hashing import cache_keys  # noqa: E402
from workbench.dedup.run import DedupOptions, find_duplicates  # noqa: E402
from workbench.engine import EngineSpec, open_engine  # noqa: E402
from workbench.ingest import ingest  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def hidden_dir():
    """A folder only the driver and the head node see (the worker node has an empty
    tmpfs over it)."""
    with tempfile.TemporaryDirectory(prefix="wbhidden") as d:
        yield Path(d)


@pytest.fixture(scope="module")
def cluster(hidden_dir):
    c = RayCluster(workers=1, cpus=1, hide=hidden_dir if can_hide_folders() else None)
    with c:
        yield c
    assert not c.leftover_pids(), "the cluster's processes outlived stop()"


def photo(seed: int, size=(160, 120)) -> Image.Image:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8))
    return small.resize(size, Image.BICUBIC)


def write_photos(root: Path, n: int = 10) -> Path:
    """ivory/: n photos, a resized copy, an exact copy, a broken file; resin/: a
    mirrored copy of an ivory photo (a conflict)."""
    (root / "ivory").mkdir(parents=True)
    (root / "resin").mkdir()
    for i in range(n):
        photo(i).save(root / "ivory" / f"p{i}.jpg", quality=90)
    photo(0).resize((80, 60), Image.LANCZOS).save(root / "ivory" / "p0_small.jpg", quality=60)
    (root / "ivory" / "p1_copy.jpg").write_bytes((root / "ivory" / "p1.jpg").read_bytes())
    ImageOps.mirror(photo(2)).save(root / "resin" / "p2_mirror.jpg", quality=85)
    (root / "ivory" / "broken.jpg").write_bytes(b"\xff\xd8\xff broken")
    return root


def ingested(workspace_factory, photos: Path, name: str):
    ws = workspace_factory(classes=["ivory", "resin"], name=name)
    with ws.open_catalog() as catalog:
        ingest(ws, catalog, photos, "folders", workers=1)
    return ws


def outcome(ws) -> dict:
    """What dedup left in the catalog, by file name: hashes, embeddings, statuses,
    groups (as sets of names)."""
    with ws.open_catalog() as catalog:
        name = {im.id: Path(im.path).name for im in catalog.images()}
        return {
            "hashes": {
                key: {name[i]: h for i, h in catalog.image_hashes(key).items()}
                for key in cache_keys("phash")
            },
            "embeddings": {name[i]: b for i, b in catalog.image_embeddings(MODEL_KEY).items()},
            "status": {
                Path(im.path).name: (im.status, im.status_reason) for im in catalog.images()
            },
            "groups": sorted(
                sorted(name[i] for i in g.image_ids) for g in catalog.dup_groups(settled=False)
            ),
        }


def test_tasks_are_spread_over_both_nodes(cluster):
    def node_of(chunk):
        import time

        import ray

        time.sleep(0.3)  # long enough that one node alone would queue them
        return ray.get_runtime_context().get_node_id()

    with open_engine(EngineSpec("ray", cluster.address)) as engine:
        assert engine.resources()["CPU"] == 2
        nodes = set(engine.map_tasks(node_of, range(8)))
    assert len(nodes) == 2


def test_dedup_on_ray_gives_the_local_results(cluster, tmp_path, workspace_factory):
    import torch

    method = "phash,cnn" if weights_available()[0] else "phash"
    photos = write_photos(tmp_path / "photos")
    local, remote = (ingested(workspace_factory, photos, n) for n in ("local", "remote"))
    # one thread, as on the 1-CPU workers: the float sums of a convolution differ in their
    # last bits with the thread count (this passed only after a test that set it to one)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with local.open_catalog() as catalog:
            find_duplicates(catalog, DedupOptions(method=method, workers=1))
    finally:
        torch.set_num_threads(threads)
    res = CliRunner().invoke(
        cli,
        ["--workspace", str(remote.root), "dedup", "--method", method, "--no-progress"]
        + ["--engine", "ray", "--ray-address", cluster.address, "--json"],
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["summary"]["hashed_now"] == 13  # 14 files, one broken
    want, got = outcome(local), outcome(remote)
    assert len(want["hashes"][cache_keys("phash")[0]]) == 13
    assert got["hashes"] == want["hashes"]
    assert got["status"] == want["status"]
    assert got["status"]["broken.jpg"][0] == "unreadable"
    assert got["groups"] == want["groups"]
    assert any({"p0.jpg", "p0_small.jpg"} <= set(g) for g in got["groups"])
    if method.endswith("cnn"):
        assert len(want["embeddings"]) == 13 and got["embeddings"] == want["embeddings"]


def registered_workspace(workspace_factory, tmp_path, name: str, weights: Path, config):
    from workbench.detection.registry import Registry

    ws = workspace_factory(name=name)
    with ws.open_catalog() as catalog:
        for i in range(10):
            add_image(catalog, draw(tmp_path / "img" / f"img{i}.png", 40 + 20 * i, (25 * i, 20)))
        registry = Registry.of(ws, catalog)
        mv = registry.register(weights, config.to_dict(), CLASSES, "species", {}, {})
        registry.promote(mv.version)
    return ws, mv.version


def test_prediction_on_ray_gives_the_local_predictions(cluster, tmp_path, workspace_factory):
    import torch

    from workbench.detection.train import TrainConfig, build_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = TrainConfig(backbone="mobilenet_v3", image_size=64, weights="none")
    weights = tmp_path / "weights.pt"
    torch.save(build_model(config, CLASSES).state_dict(), weights)
    runs = {}
    for name, engine in (("local", []), ("remote", ["--engine", "ray"])):
        ws, version = registered_workspace(workspace_factory, tmp_path, name, weights, config)
        res = CliRunner().invoke(
            cli,
            ["--workspace", str(ws.root), "prioritize", "--strategy", "uncertainty"]
            + ["--no-labelstudio", "--json", *engine, "--ray-address", cluster.address],
        )
        assert res.exit_code == 0, res.output
        with ws.open_catalog() as catalog:
            by_path = {im.id: Path(im.path).name for im in catalog.images()}
            runs[name] = (
                {by_path[i]: d for i, d in catalog.predictions(version).items()},
                [(by_path[p.image_id], p.uncertainty) for p in catalog.priorities(version)],
            )
    (want, want_rank), (got, got_rank) = runs["local"], runs["remote"]
    assert len(want) == 10 and any(want.values())  # the untrained model does find boxes
    assert got == want
    assert sorted(got_rank) == sorted(want_rank)


@pytest.mark.skipif(not can_hide_folders(), reason="hiding a folder needs root and unshare")
def test_a_folder_the_worker_node_cannot_see_is_named_and_nothing_is_marked(
    cluster, hidden_dir, workspace_factory
):
    photos = hidden_dir / "photos"
    for i in range(24):
        (photos / "ivory").mkdir(parents=True, exist_ok=True)
        photo(100 + i, (64, 48)).save(photos / "ivory" / f"h{i}.jpg", quality=90)
    ws = ingested(workspace_factory, photos, "hidden")
    res = CliRunner().invoke(
        cli,
        ["--workspace", str(ws.root), "dedup", "--no-progress", "--workers", "2"]
        + ["--engine", "ray", "--ray-address", cluster.address],
    )
    assert res.exit_code == 1
    assert "readable here but not on a Ray worker" in res.output
    assert str(photos / "ivory") in res.output
    with ws.open_catalog() as catalog:
        assert {im.status for im in catalog.images()} == {"active"}
    # the same catalog on this machine: every file is there
    res = CliRunner().invoke(cli, ["--workspace", str(ws.root), "dedup", "--no-progress"])
    assert res.exit_code == 0, res.output


def test_lost_workers_are_retried_and_unrecoverable_ones_named(cluster, tmp_path):
    """A worker killed mid-task is retried; one that keeps dying, or a model that cannot
    load, stops the run with a one-line error saying why."""
    from workbench.engine import EngineError

    marker = tmp_path / "died-once"

    def dies_once(x):
        import os

        if x == 3 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies, as when a node is lost
        return x * 10

    def always_dies(x):
        import os

        os._exit(1)

    class Model:
        def __init__(self):
            self.factor = 7

    def no_weights():
        raise FileNotFoundError("no weights at /x")

    def call_dies_once(model, x):
        import os

        if x == 2 and not os.path.exists(str(marker) + ".actor"):
            open(str(marker) + ".actor", "w").close()
            os._exit(1)  # the actor dies: restarted, its model rebuilt, the call retried
        return model.factor * x

    with open_engine(EngineSpec("ray", cluster.address)) as engine:
        assert sorted(engine.map_tasks(dies_once, range(6))) == [0, 10, 20, 30, 40, 50]
        assert marker.exists()
        got = sorted(engine.map_with_model(Model, call_dies_once, range(4), workers=1))
        assert got == [0, 7, 14, 21]
        with pytest.raises(EngineError, match="lost beyond its retries.*re-run"):
            list(engine.map_tasks(always_dies, [1]))
        with pytest.raises(EngineError, match="could not load its model: .*no weights at /x"):
            list(engine.map_with_model(no_weights, call_dies_once, [1], workers=1))


@pytest.mark.timeout(300)  # an actor that cannot be placed would wait for ever
def test_model_actors_are_placed_on_the_gpus_one_each_or_sharing_them():
    """A worker node declaring one GPU (Ray takes the count as given, so this CPU machine
    stands in for a GPU node): the model actors all go there with the GPU visible to
    them, one actor per GPU by default; asked for two, they share it instead of one of
    them waiting for a GPU that never frees."""

    # a stand-in model that says where its actor runs (defined in here: Ray pickles it
    # by value, so the workers need not import this module)
    class WhereAmI:
        def __init__(self):
            import os

            import ray

            ctx = ray.get_runtime_context()
            self.where = (ctx.get_node_id(), os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES"))

    def where(model, chunk):
        return model.where

    with RayCluster(workers=1, cpus=1, worker_gpus=1) as c:
        with open_engine(EngineSpec("ray", c.address)) as engine:
            import ray

            assert engine.resources()["GPU"] == 1  # (connects)
            gpu_nodes = {
                n["NodeID"] for n in ray.nodes() if n["Alive"] and n["Resources"].get("GPU")
            }
            assert len(gpu_nodes) == 1
            one = list(engine.map_with_model(WhereAmI, where, range(6)))
            assert len(one) == 6 and len({pid for _, pid, _ in one}) == 1
            assert {node for node, _, _ in one} == gpu_nodes
            assert {cuda for _, _, cuda in one} == {"0"}
            two = list(engine.map_with_model(WhereAmI, where, range(6), workers=2))
            assert len(two) == 6 and len({pid for _, pid, _ in two}) == 2
            assert {node for node, _, _ in two} == gpu_nodes
            assert {cuda for _, _, cuda in two} == {"0"}
    assert not c.leftover_pids(), "the cluster's processes outlived stop()"
