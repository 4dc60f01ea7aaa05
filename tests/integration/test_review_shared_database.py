"""`wb review` on a shared MongoDB (`[review] database_uri`): a second mongod, started
here from FiftyOne's own binary on 127.0.0.1 and stopped by PID, stands for the team's
server. wb then starts no database of its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

sys.path.insert(0, str(Path(__file__).resolve().parent))
from review_cases import build_case  # noqa: E402

from workbench.cli import cli  # noqa: E402
from workbench.errors import ServiceError  # noqa: E402
from workbench.review.environment import APP_ADDRESS, mongod_executable, review_paths  # noqa: E402
from workbench.services import free_port, port_open, spawn  # noqa: E402
from workbench.taxonomy import Taxonomy  # noqa: E402
from workbench.workspace import Workspace  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def shared_mongod(module_tmp):
    try:
        mongod = mongod_executable()
    except ServiceError as exc:
        pytest.skip(f"FiftyOne's MongoDB is not installed here: {exc}")
    root = module_tmp.mktemp("shared-mongo")
    (root / "db").mkdir()
    port = free_port()
    server = spawn(
        "the shared MongoDB",
        [
            str(mongod),
            "--dbpath",
            str(root / "db"),
            "--port",
            str(port),
            "--bind_ip",
            APP_ADDRESS,
            "--nounixsocket",
            "--wiredTigerCacheSizeGB",
            "0.25",
        ],
        root / "mongod.log",
    )
    try:
        server.wait_healthy(lambda: port_open(port), 60, interval=0.2)
        yield f"mongodb://{APP_ADDRESS}:{port}"
    finally:
        server.stop()


def test_review_uses_the_shared_database_and_starts_none(shared_mongod, tmp_path):
    import pymongo

    ws = Workspace.create(tmp_path / "ws", Taxonomy.flat(["ivory", "resin"]))
    build_case(ws, tmp_path / "images")
    ws.set("review", "database_uri", shared_mongod)
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "review", "--no-launch", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["samples"] == 5
    with pymongo.MongoClient(shared_mongod, serverSelectionTimeoutMS=5000) as client:
        names = [d["name"] for d in client["fiftyone"]["datasets"].find({}, {"name": 1})]
    assert out["dataset"] in names
    paths = review_paths(ws)
    assert not paths.database_state.exists()  # no mongod of its own was recorded
    assert not any(paths.database_dir.iterdir())  # nor wrote a database folder


def test_an_unreachable_shared_database_is_named_with_what_to_do(tmp_path):
    ws = Workspace.create(tmp_path / "ws", Taxonomy.flat(["ivory", "resin"]))
    build_case(ws, tmp_path / "images")
    port = free_port()
    ws.set("review", "database_uri", f"mongodb://someone:secret@127.0.0.1:{port}")
    result = CliRunner().invoke(cli, ["-w", str(ws.root), "review", "--no-launch"])
    assert result.exit_code != 0
    assert f"the shared review database at 127.0.0.1:{port} does not answer" in result.output
    assert "[review] database_uri" in result.output and "secret" not in result.output
