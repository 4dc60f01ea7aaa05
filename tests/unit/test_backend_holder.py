"""ModelHolder: one load, swaps on promotion, requests in flight keep their model."""

from __future__ import annotations

import threading
import time

import pytest

from workbench.backend import ModelHolder, NoModel


class FakeModel:
    def __init__(self, version):
        self.version = version


class Promotions:
    def __init__(self, version=None):
        self.version = version
        self.loads: list[str] = []
        self.reads = 0

    def promoted(self):
        self.reads += 1
        return self.version

    def load(self, version):
        self.loads.append(version)
        time.sleep(0.05)
        if version == "broken":
            raise OSError("weights missing")
        return FakeModel(version)


def test_loads_once_and_polls_at_most_every_poll_seconds():
    p = Promotions("v001")
    now = [100.0]
    holder = ModelHolder(p.load, p.promoted, poll_seconds=5, clock=lambda: now[0])

    for _ in range(10):
        assert holder.current().version == "v001"
    assert p.loads == ["v001"] and p.reads == 1
    now[0] += 5
    holder.current()
    assert p.reads == 2 and p.loads == ["v001"]


def test_switches_to_a_newly_promoted_version_and_calls_on_swap():
    p = Promotions("v001")
    swapped = []
    holder = ModelHolder(p.load, p.promoted, poll_seconds=0, on_swap=swapped.append)
    held = holder.current()  # a request in flight holds this one

    p.version = "v002"
    assert holder.current().version == "v002"
    assert held.version == "v001"  # untouched by the swap
    assert swapped == ["v002"]


def test_a_version_that_fails_to_load_keeps_the_old_one_serving():
    p = Promotions("v001")
    holder = ModelHolder(p.load, p.promoted, poll_seconds=0)
    holder.current()

    p.version = "broken"
    assert holder.current().version == "v001"
    assert "could not be loaded" in holder.last_error


def test_other_requests_do_not_wait_for_a_load_in_progress():
    p = Promotions("v001")
    holder = ModelHolder(p.load, p.promoted, poll_seconds=0)
    holder.current()
    p.version = "v002"
    seen = []
    loader = threading.Thread(target=lambda: seen.append(holder.current().version))
    loader.start()
    time.sleep(0.01)  # the loader thread is inside load()
    t0 = time.monotonic()
    seen.append(holder.current().version)
    waited = time.monotonic() - t0
    loader.join()

    assert waited < 0.04
    assert sorted(seen) == ["v001", "v002"]
    assert p.loads == ["v001", "v002"]


def test_no_promoted_model_raises_nomodel_with_what_to_do():
    holder = ModelHolder(Promotions(None).load, Promotions(None).promoted, poll_seconds=0)
    assert holder.current() is None
    with pytest.raises(NoModel, match="wb retrain"):
        holder.require()


def test_first_requests_wait_for_the_first_load_instead_of_failing():
    p = Promotions("v001")
    holder = ModelHolder(p.load, p.promoted, poll_seconds=10)
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(holder.current())) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert [m.version for m in seen] == ["v001"] * 4
    assert p.loads == ["v001"]
