"""WB_FAULT_AT: the one switch of the fault tier (tests/fault)."""

import signal
import subprocess
import sys

import pytest

from workbench import faults

COUNT_TO_FIVE = (
    "from workbench.faults import fault_point\n"
    "for i in range(1, 6):\n"
    "    fault_point('other')\n"
    "    print(i, flush=True)\n"
    "    fault_point('here')\n"
)


def _run(spec: str | None) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": ":".join(sys.path)}
    if spec is not None:
        env[faults.ENV] = spec
    return subprocess.run(
        [sys.executable, "-c", COUNT_TO_FIVE], env=env, capture_output=True, text=True
    )


def test_the_process_kills_itself_the_nth_time_it_passes_the_named_point():
    res = _run("here:3")
    assert res.returncode == -signal.SIGKILL
    assert res.stdout.split() == ["1", "2", "3"]  # the third pass, after its work


def test_unset_or_naming_another_point_changes_nothing():
    for spec in (None, "", "elsewhere:1"):
        res = _run(spec)
        assert res.returncode == 0 and res.stdout.split() == ["1", "2", "3", "4", "5"]


@pytest.mark.parametrize("spec", ["here", "here:", ":2", "here:0", "here:x", "here:-1"])
def test_a_malformed_value_says_what_is_expected(spec):
    with pytest.raises(ValueError, match="expected NAME:N with N >= 1"):
        faults.parse(spec)


def test_a_name_may_hold_dots_and_colons_up_to_the_last_colon():
    assert faults.parse("push.imported:2") == ("push.imported", 2)
    assert faults.parse("a:b:10") == ("a:b", 10)
    assert faults.parse(None) is None and faults.parse("") is None
