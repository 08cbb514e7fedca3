"""The taskstats listener's bookkeeping, fed records directly: threads summed per process,
bounded buffers, stale partial sums. (Without the privilege: tests/e2e/test_exporter_depth.)"""

from __future__ import annotations

import errno

import pytest

from procpilot.core.taskstats import TaskExit
from procpilot.exporter import exits
from procpilot.exporter.exits import ExitListener, ProcessExit

BOOT = 900.0  # the wall-clock time of boot in these tests


@pytest.fixture(autouse=True)
def wall_clock_at_boot(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exits, "boot_offset", lambda: BOOT)


def record(pid: int, tgid: int | None = None, *, last: bool = True, comm: str = "w",
           start: float = 1000.0, user: float = 0.5, nvcsw: int = 3,
           read_bytes: int = 4096) -> TaskExit:
    return TaskExit(pid, pid if tgid is None else tgid, last, comm, 1, 0, start, user, 0.25,
                    0.8, 10, 1, nvcsw, 2, read_bytes, 0, False)


def test_a_single_threaded_process_completes_with_its_record() -> None:
    listener = ExitListener()
    listener._add(record(10))
    (done,) = listener.take(alive=()).exits
    assert done == ProcessExit(10, 100.0, "w", 1, 0, 0.5, 0.25, 0.8, 10, 1, 3, 2, 4096, 0)


def test_start_times_are_kept_since_boot_which_a_wall_clock_step_does_not_move(
        monkeypatch: pytest.MonkeyPatch) -> None:
    listener = ExitListener()
    monkeypatch.setattr(exits, "boot_offset", lambda: BOOT + 3600)  # stepped an hour ahead
    listener._add(record(10, start=1000.0 + 3600))  # the kernel's wall clock, after the step
    (done,) = listener.take(alive=()).exits
    assert done.start == 100.0


def test_threads_are_summed_and_the_main_thread_names_the_process() -> None:
    listener = ExitListener()
    listener._add(record(11, 10, last=False, comm="worker-1", nvcsw=50))
    listener._add(record(10, 10, last=False, comm="server", nvcsw=7))
    assert listener.take(alive={10}).exits == []  # still running
    listener._add(record(12, 10, last=True, comm="worker-2", nvcsw=90))
    (done,) = listener.take(alive=()).exits
    assert (done.tgid, done.comm, done.user, done.read_bytes) == (10, "server", 1.5, 3 * 4096)
    assert done.nvcsw == 7  # the main thread's, as /proc/<pid>/status counts them


def test_a_reused_pid_starts_a_new_sum() -> None:
    listener = ExitListener()
    listener._add(record(11, 10, last=False, start=1000.0))  # its last record was lost
    listener._add(record(11, 10, last=False, start=2000.0))  # pid 10 reused later
    listener._add(record(10, 10, last=True, start=2000.0))
    (done,) = listener.take(alive=()).exits
    assert done.user == 1.0


def test_a_burst_is_bounded_and_what_is_dropped_counted() -> None:
    listener = ExitListener(capacity=20_000)
    for pid in range(100_000):
        listener._add(record(pid))
    batch = listener.take(alive=())
    assert len(batch.exits) == 20_000
    assert batch.lost_capacity == 80_000
    assert listener.take(alive=()).lost_capacity == 0


def test_partial_sums_of_processes_that_are_gone_are_dropped() -> None:
    listener = ExitListener()
    listener._add(record(11, 10, last=False))  # process 10 ends; its last record is lost
    listener._add(record(21, 20, last=False))  # process 20 lives on
    listener.take(alive={10, 20})
    listener.take(alive={20})  # 10 is gone and nothing came for it since the last take
    assert set(listener._partial) == {20}


class BrokenSocket:
    """A subscription whose socket fails at once, so the listener's thread dies."""

    def __init__(self) -> None:
        self.closed = False

    def recv(self, size: int) -> bytes:
        raise OSError(errno.EIO, "broken")

    def close(self) -> None:
        self.closed = True


def test_starting_again_after_the_thread_died_closes_the_old_socket(
        monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[BrokenSocket] = []

    def subscribe() -> tuple[BrokenSocket, int]:
        made.append(BrokenSocket())
        return made[-1], 0

    monkeypatch.setattr(exits, "_subscribe", subscribe)
    listener = ExitListener()
    assert listener.start() is None
    assert listener._thread is not None
    listener._thread.join(5)
    assert not listener.listening
    assert listener.start() is None  # as a reload does
    assert made[0].closed
    listener.stop()
    assert made[1].closed
