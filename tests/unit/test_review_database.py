"""Why the review database failed to start, read from its log (no MongoDB needed)."""

from __future__ import annotations

import json
from pathlib import Path

from workbench.review.database import ReviewDatabase


class _Paths:
    def __init__(self, root: Path):
        self.database_dir = root / "database"


def _entry(severity: str, msg: str, **attr) -> str:
    return json.dumps(
        {"t": {"$date": "2026-12-02"}, "s": severity, "c": "STORAGE", "msg": msg, "attr": attr}
    )


def test_what_mongod_printed_before_its_log_opened_is_the_reason(tmp_path):
    log = tmp_path / "mongod.log"
    log.write_text(
        "Error parsing command line: unrecognised option '--bad'\n"
        "try 'mongod --help' for more information\n"
    )
    message = ReviewDatabase._failure_message(_Paths(tmp_path), 2, log)
    assert message.startswith(
        f"the review database (MongoDB, {tmp_path / 'database'}) failed "
        "to start: Error parsing command line: unrecognised option '--bad' "
        "try 'mongod --help' for more information. "
    )
    assert "move" in message and message.endswith(f"Log: {log}")


def test_the_first_logged_error_of_this_run_is_the_reason_and_a_lock_names_the_other_server(
    tmp_path,
):
    log = tmp_path / "mongod.log"
    earlier_run = _entry("E", "an old failure") + "\n"
    log.write_text(
        earlier_run
        + "\n".join(
            [
                _entry("I", "starting"),
                _entry("E", "Failed to set up listener", error={"codeName": "SocketException"}),
                _entry(
                    "F",
                    "DBException in initAndListen",
                    error={"errmsg": "Unable to lock the lock file", "codeName": "DBPathInUse"},
                ),
                "some printed text",
            ]
        )
        + "\n"
    )
    message = ReviewDatabase._failure_message(
        _Paths(tmp_path), 100, log, log_offset=len(earlier_run)
    )
    assert "failed to start: Failed to set up listener SocketException. " in message
    assert "an old failure" not in message and "printed" not in message
    assert "Another MongoDB server is using this folder" in message


def test_without_any_log_the_exit_code_is_the_reason(tmp_path):
    message = ReviewDatabase._failure_message(_Paths(tmp_path), 14, tmp_path / "missing.log")
    assert "failed to start: exit code 14. " in message
