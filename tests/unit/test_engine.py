"""workbench.engine without a cluster: choosing the engine, the local engine's two shapes
of work, the errors of the Ray engine that need no cluster (not installed, no address,
unreachable), telling a worker that cannot see a file from a broken file, and runs
interrupted mid-stream keeping what had arrived (the re-run continues)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from workbench.cli import cli
from workbench.dedup.hashing import cache_keys
from workbench.engine import (
    EngineError,
    EngineSpec,
    LocalEngine,
    RayUnreachable,
    WorkerCannotRead,
    check_worker_read,
    engine_spec,
    open_engine,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prioritize_cases import VERSION, BrightnessModel, add_image, draw, register_model  # noqa: E402

pytestmark = pytest.mark.unit
REPO = Path(__file__).resolve().parents[2]


def _square(x: int) -> int:
    return x * x


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def no_ray_address(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)


def test_the_option_beats_the_workspace_setting_which_beats_local(workspace_factory):
    ws = workspace_factory()
    assert engine_spec(ws) == EngineSpec("local", None)
    ws.set("engine", "name", "ray")
    ws.set("engine", "ray_address", "10.0.0.5:6379")
    assert engine_spec(ws) == EngineSpec("ray", "10.0.0.5:6379")
    assert engine_spec(ws, name="local") == EngineSpec("local", None)
    assert engine_spec(ws, address="10.0.0.9:7000").address == "10.0.0.9:7000"
    ws.set("engine", "name", "spark")
    with pytest.raises(EngineError, match="unknown engine 'spark'; choose one of: local, ray"):
        engine_spec(ws)


def test_local_tasks_give_the_same_results_in_processes_and_inline():
    engine = open_engine()
    assert isinstance(engine, LocalEngine)
    inline = list(engine.map_tasks(_square, range(7), workers=1))
    pooled = list(engine.map_tasks(_square, range(7), workers=2))
    assert inline == pooled == [x * x for x in range(7)]


def test_local_model_work_builds_the_model_once_and_only_when_there_is_work():
    built = []

    def factory():
        built.append(1)
        return 10

    engine = LocalEngine()
    assert list(engine.map_with_model(factory, lambda m, c: m + c, [])) == [] and not built
    assert list(engine.map_with_model(factory, lambda m, c: m + c, [1, 2, 3])) == [11, 12, 13]
    assert built == [1]


def test_without_ray_installed_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(EngineError, match=r"pip install 'workbench\[ray\]'.*--engine local"):
        open_engine(EngineSpec("ray", "127.0.0.1:6379"))


def test_ray_without_an_address_says_where_to_set_one():
    with pytest.raises(EngineError, match="--ray-address HOST:PORT.*ray_address.*RAY_ADDRESS"):
        open_engine(EngineSpec("ray", None))


def test_an_unreachable_cluster_fails_in_seconds_naming_its_address():
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'workbench[ray]'")
    address = f"127.0.0.1:{free_port()}"
    t0 = time.monotonic()
    with pytest.raises(RayUnreachable) as err:
        open_engine(EngineSpec("ray", address))
    assert time.monotonic() - t0 < 10
    message = str(err.value)
    assert f"Ray cluster at {address} is unreachable" in message and "\n" not in message
    with pytest.raises(RayUnreachable, match="'nohost' is not host:port"):
        open_engine(EngineSpec("ray", "nohost"))


def test_dedup_on_an_unreachable_cluster_exits_1_naming_it(workspace_factory, tmp_path):
    pytest.importorskip("ray", reason="Ray is not installed: pip install 'workbench[ray]'")
    ws = workspace_factory()
    address = f"127.0.0.1:{free_port()}"
    res = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "dedup", "--engine", "ray", "--ray-address", address]
    )
    assert res.exit_code == 1
    assert f"Ray cluster at {address} is unreachable" in res.output


class _FakeRay:
    name = "ray"


def test_a_file_readable_here_but_not_on_a_worker_is_named(tmp_path):
    here = tmp_path / "here.jpg"
    here.write_bytes(b"x")
    with pytest.raises(WorkerCannotRead, match=f"{here} is readable here but not on a Ray"):
        check_worker_read(str(here), "cannot read file: No such file or directory", _FakeRay())
    # gone here too, or a broken image, or the local engine: an unreadable image, no error
    check_worker_read(str(tmp_path / "gone.jpg"), "cannot read file: No such file", _FakeRay())
    check_worker_read(str(here), "not an image (cannot identify image file)", _FakeRay())
    check_worker_read(str(here), "cannot read file: No such file", LocalEngine())


class _StopsAfter(LocalEngine):
    """The local engine, interrupted (as by Ctrl-C) after ``n`` results."""

    def __init__(self, n: int):
        self.n = n

    def _cut(self, results):
        for k, r in enumerate(results):
            if k == self.n:
                raise KeyboardInterrupt
            yield r

    def map_tasks(self, fn, chunks, workers=None, initializer=None):
        return self._cut(super().map_tasks(fn, chunks, workers=1))

    def map_with_model(self, factory, call, chunks, workers=None):
        return self._cut(super().map_with_model(factory, call, chunks))


def _photo(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (6, 8, 3), dtype=np.uint8)).resize((64, 48))


def test_interrupted_hashing_keeps_what_arrived_and_the_rerun_continues(
    workspace_factory, tmp_path, monkeypatch
):
    import workbench.dedup.hashing as hashing
    import workbench.dedup.run as run_mod
    from workbench.dedup.run import DedupOptions, find_duplicates
    from workbench.ingest import ingest

    monkeypatch.setattr(run_mod, "SAVE_EVERY", 1)
    monkeypatch.setattr(hashing, "chunk_size", lambda total, workers: 2)
    photos = tmp_path / "photos" / "ivory"
    photos.mkdir(parents=True)
    for i in range(8):
        _photo(i).save(photos / f"p{i}.jpg")
    ws = workspace_factory(classes=["ivory"])
    with ws.open_catalog() as catalog:
        ingest(ws, catalog, photos.parent, "folders", workers=1)
        with pytest.raises(KeyboardInterrupt):
            find_duplicates(catalog, DedupOptions(workers=1), engine=_StopsAfter(2))
        assert len(catalog.image_hashes(cache_keys("phash")[0])) == 4  # two chunks of two arrived
        assert len(catalog.image_hashes(cache_keys("phash")[1])) == 4
    res = CliRunner().invoke(
        cli, ["--workspace", str(ws.root), "dedup", "--engine", "local", "--json"]
    )
    assert res.exit_code == 0, res.output
    assert '"hashed_cached": 4' in res.output and '"hashed_now": 4' in res.output


def test_interrupted_prediction_keeps_the_batches_that_arrived(workspace_factory, tmp_path):
    from workbench.detection.predict import predict_catalog

    ws = workspace_factory()
    with ws.open_catalog() as catalog:
        register_model(ws, catalog)
        ids = [add_image(catalog, draw(tmp_path / f"i{i}.png", 30 * i)) for i in range(6)]
        (tmp_path / "i5.png").write_bytes(b"")  # unreadable: reported, not stored
        with pytest.raises(KeyboardInterrupt):
            predict_catalog(
                ws,
                catalog,
                VERSION,
                ids,
                predictor=BrightnessModel(),
                batch_size=2,
                engine=_StopsAfter(1),
            )
        assert set(catalog.predictions(VERSION)) == set(ids[:2])
        model = BrightnessModel()
        todo = [i for i in ids if i not in catalog.predictions(VERSION)]
        run = predict_catalog(ws, catalog, VERSION, todo, predictor=model, batch_size=2)
        assert model.predicted == [2, 1]  # only the rest, in the same batches
        assert set(catalog.predictions(VERSION)) == set(ids[:5])
        assert run.unreadable == [(ids[5], "empty file (0 bytes)")]


def test_local_commands_do_not_import_ray():
    code = (
        "import sys, workbench.cli, workbench.engine, workbench.dedup.run, "
        "workbench.detection.predict; "
        "list(workbench.engine.open_engine().map_tasks(abs, [-1])); "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    )
    assert out.stdout.strip() == "False"
