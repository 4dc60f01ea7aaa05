"""The /predict gate: a bounded number run, a bounded number wait, the rest are refused."""

from __future__ import annotations

import threading
import time

import pytest

from workbench.backend.admission import Busy, PredictGate


def test_requests_beyond_the_slots_wait_and_then_run():
    gate = PredictGate(slots=1, queue=2, wait_s=5)
    order = []

    def second():
        with gate.admit():
            order.append("second")

    with gate.admit():
        worker = threading.Thread(target=second)
        worker.start()
        deadline = time.monotonic() + 5
        while gate.waiting == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate.waiting == 1 and gate.running == 1
        order.append("first")
    worker.join(5)
    assert order == ["first", "second"]
    assert gate.running == 0 and gate.waiting == 0 and gate.peak_waiting == 1


def test_a_full_queue_refuses_at_once_and_a_long_wait_gives_up():
    gate = PredictGate(slots=1, queue=0, wait_s=0.2)
    with gate.admit():
        with pytest.raises(Busy, match="1 predict requests running and 0 waiting"):
            with gate.admit():
                pass
    patient = PredictGate(slots=1, queue=1, wait_s=0.2)
    with patient.admit():
        started = time.monotonic()
        with pytest.raises(Busy, match="waited 0.2 s"):
            with patient.admit():
                pass
        assert time.monotonic() - started >= 0.2
    assert gate.refused == 1 and patient.refused == 1
    with patient.admit():  # the slot came back
        pass
