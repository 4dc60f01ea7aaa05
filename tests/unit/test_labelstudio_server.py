"""The local server's pieces that need no Label Studio: paths, tokens, ports, its PID file.

Stopping processes is tested in test_services.py."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest

from workbench.labelstudio import server
from workbench.labelstudio.server import (
    DocumentRootError,
    LabelStudioNotInstalled,
    PortInUse,
    choose_document_root,
    storage_dirs,
)


def test_document_root_is_the_common_folder_of_class_folders(tmp_path):
    paths = [tmp_path / "photos" / "tiger" / "a.jpg", tmp_path / "photos" / "ivory" / "b.jpg"]
    root = choose_document_root(paths)
    assert root == tmp_path / "photos"
    assert storage_dirs(paths, root) == [
        tmp_path / "photos" / "ivory",
        tmp_path / "photos" / "tiger",
    ]


def test_document_root_moves_up_when_an_image_sits_directly_in_the_common_folder(tmp_path):
    # Label Studio refuses a storage path equal to its document root
    paths = [tmp_path / "photos" / "a.jpg", tmp_path / "photos" / "sub" / "b.jpg"]
    root = choose_document_root(paths)
    assert root == tmp_path
    assert storage_dirs(paths, root) == [tmp_path / "photos"]


def test_document_root_is_never_the_file_system_root():
    with pytest.raises(DocumentRootError, match="whole file system"):
        choose_document_root(["/a/x.jpg", "/b/y.jpg"])
    assert choose_document_root([]) is None


def test_credentials_are_generated_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("WB_LS_TOKEN", raising=False)
    first = server.credentials(tmp_path)
    again = server.credentials(tmp_path)
    assert first == again and len(first.token) == 40 and "@" in first.username
    mode = stat.S_IMODE(os.stat(tmp_path / server.AUTH_NAME).st_mode)
    assert mode == 0o600
    monkeypatch.setenv("WB_LS_TOKEN", "from-env")
    assert server.credentials(tmp_path).token == "from-env"
    assert first.token in (tmp_path / server.AUTH_NAME).read_text()  # the file is unchanged


def test_a_missing_executable_names_the_setup_command(tmp_path, monkeypatch):
    monkeypatch.setenv("WB_LS_BIN", str(tmp_path / "nope"))
    with pytest.raises(LabelStudioNotInstalled, match=r"pip install label-studio==1\.23\.2"):
        server.find_executable()


def test_a_busy_port_is_refused(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} .* in use"):
            server.launch(
                port,
                tmp_path / "data",
                server.Credentials("a@b.c", "p", "t"),
                None,
                tmp_path / "log",
                executable=tmp_path / "never-run",
            )


def test_server_env_presets_admin_token_and_closes_signup(tmp_path, monkeypatch):
    monkeypatch.setenv("LABEL_STUDIO_PORT", "1")  # a parent's settings do not leak in
    env = server.server_env(
        tmp_path, server.Credentials("a@b.c", "pw", "t" * 40), tmp_path / "imgs"
    )
    assert env["LABEL_STUDIO_USER_TOKEN"] == "t" * 40
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert env["LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK"] == "true"
    assert env["LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"] == str(tmp_path / "imgs")
    assert env["LABEL_STUDIO_SSRF_PROTECTION_ENABLED"] == "false"
    assert "LABEL_STUDIO_PORT" not in env
    assert (
        server.server_env(tmp_path, server.Credentials("a", "b", "c"), None)[
            "LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED"
        ]
        == "false"
    )


def test_a_stale_state_file_is_dropped(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    (tmp_path / server.STATE_NAME).write_text(
        f'{{"pid": {proc.pid}, "port": 1, "url": "u", "data_dir": "d", "document_root": null,'
        f' "log": "l", "started_at": 0}}'
    )
    assert server.read_state(tmp_path) is None
    assert not (tmp_path / server.STATE_NAME).exists()


def test_a_state_file_of_a_live_process_that_is_not_label_studio_is_dropped(tmp_path):
    # the recorded PID was recycled by another program
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (tmp_path / server.STATE_NAME).write_text(
            f'{{"pid": {proc.pid}, "port": 1, "url": "u", "data_dir": "d", "document_root": null,'
            f' "log": "l", "started_at": 0}}'
        )
        assert server.read_state(tmp_path) is None
        assert not (tmp_path / server.STATE_NAME).exists()
    finally:
        proc.kill()
        proc.wait()
