"""The deadline that bounds jsf's work (``mock_server.watchdog``): it stops work whose first stop lands
in a finalizer (CPython swallows that raise; a CI worker once ran out of memory after a trace-function
deadline was swallowed so), and no raise ever reaches a thread after it left its block."""

from __future__ import annotations

import random
import threading
import time

import pytest

from mock_server import structured, watchdog
from mock_server.errors import ApiError

#: Every loop here stops by itself after this long, in s, whether or not the deadline works.
BOUND_S = 10.0


def _call() -> None:
    """A Python call: a place where a raise can be delivered."""


class _Finalized:
    """An object whose finalizer makes a Python call: a raise delivered there is swallowed by CPython."""

    def __del__(self) -> None:
        _call()


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_work_whose_first_stop_lands_in_a_finalizer_is_still_stopped() -> None:
    # Every Python call of this loop is in a finalizer, so a deadline that raises once (a trace function,
    # unset by CPython when it raised) is swallowed there and the loop runs on to BOUND_S.
    started = time.monotonic()
    with pytest.raises(ApiError) as caught, structured._budget("response_format.json_schema.schema"):
        while time.monotonic() - started < BOUND_S:
            _Finalized()
    assert caught.value.status == 400
    assert caught.value.param == "response_format.json_schema.schema"
    assert time.monotonic() - started < BOUND_S / 2
    assert watchdog.active() == 0


def test_no_raise_reaches_the_thread_after_it_left_the_block() -> None:
    started = time.monotonic()
    with pytest.raises(watchdog.OutOfTime), watchdog.deadline(0.05):
        while time.monotonic() - started < BOUND_S:
            _call()
    quiet_until = time.monotonic() + 10 * watchdog.REPEAT_S  # the watchdog would raise again every REPEAT_S
    while time.monotonic() < quiet_until:
        _call()
    assert watchdog.active() == 0


def test_blocks_that_end_about_at_their_deadline_never_leak_a_raise() -> None:
    """Eight threads, each 40 blocks whose work ends at random around its deadline: an OutOfTime may end
    a block, never arrive after it."""
    escaped: list[str] = []
    stopped = [0]

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(40):
            try:
                try:
                    with watchdog.deadline(0.01):
                        until = time.monotonic() + rng.uniform(0.0, 0.02)
                        while time.monotonic() < until:
                            _call()
                except watchdog.OutOfTime:
                    stopped[0] += 1
                after = time.monotonic() + 0.005  # a raise still pending is delivered at the first call
                while time.monotonic() < after:
                    _call()
            except watchdog.OutOfTime:
                escaped.append(f"thread {seed}")
                return

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(BOUND_S * 3)
    assert not [thread for thread in threads if thread.is_alive()]
    assert not escaped
    assert stopped[0] > 0  # the deadlines did fire
    assert watchdog.active() == 0


def test_blocks_do_not_nest() -> None:
    with watchdog.deadline(5.0), pytest.raises(RuntimeError), watchdog.deadline(5.0):
        pass
    assert watchdog.active() == 0
