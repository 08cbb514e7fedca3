"""taskstats messages as the kernel lays them out: each field written at the offset
linux/taskstats.h gives it (version 16, 560 bytes here), independently of the parser."""

from __future__ import annotations

import errno
import struct

import pytest

from procpilot.core import taskstats as ts

FAMILY = 27
OFFSETS = {  # field: (offset, format)
    "version": (0, "H"), "ac_flag": (8, "B"), "cpu_run_virtual_total": (72, "Q"),
    "ac_comm": (80, "32s"), "ac_uid": (120, "I"), "ac_pid": (128, "I"), "ac_ppid": (132, "I"),
    "ac_btime": (136, "I"), "ac_etime": (144, "Q"), "ac_utime": (152, "Q"),
    "ac_stime": (160, "Q"), "ac_minflt": (168, "Q"), "ac_majflt": (176, "Q"),
    "read_bytes": (248, "Q"), "write_bytes": (256, "Q"), "nvcsw": (272, "Q"),
    "nivcsw": (280, "Q"), "ac_btime64": (344, "Q"), "ac_tgid": (368, "I"),
    "ac_tgetime": (376, "Q"), "ac_exe_dev": (384, "Q"), "ac_exe_inode": (392, "Q"),
}


def stats(**fields: object) -> bytes:
    values: dict[str, object] = {
        "version": 16, "ac_comm": b"worker", "ac_uid": 1000, "ac_pid": 4321,
        "ac_ppid": 100, "ac_btime": 1_700_000_000, "ac_btime64": 1_700_000_000,
        "ac_etime": 2_500_000, "ac_tgetime": 2_500_000, "ac_tgid": 4321, "ac_utime": 20_000,
        "ac_stime": 5_000, "cpu_run_virtual_total": 24_000_000, "ac_exe_dev": 65024,
        "ac_exe_inode": 26723, "ac_flag": ts.AGROUP, "ac_minflt": 300, "ac_majflt": 2,
        "read_bytes": 4096, "write_bytes": 8192, "nvcsw": 7, "nivcsw": 1, **fields,
    }
    buf = bytearray(560)
    for name, value in values.items():
        offset, fmt = OFFSETS[name]
        struct.pack_into("=" + fmt, buf, offset, value)
    return bytes(buf)


def attr(kind: int, payload: bytes) -> bytes:
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size % 4)


def message(kind: int, payload: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, 0, 0, 0) + payload


def exit_message(record: bytes, pid: int = 4321) -> bytes:
    aggr = attr(ts.TASKSTATS_TYPE_AGGR_PID, attr(1, struct.pack("=I", pid)) + attr(3, record))
    return message(FAMILY, struct.pack("=BBH", ts.TASKSTATS_CMD_NEW, 1, 0) + aggr)


def test_a_process_record_in_base_units() -> None:
    (got,) = ts.parse_exits(exit_message(stats()), FAMILY)
    assert got == ts.TaskExit(
        pid=4321, tgid=4321, last=True, comm="worker", ppid=100, uid=1000,
        start=1_700_000_000.0, user=0.02, system=0.005, runtime=0.024, minflt=300, majflt=2,
        nvcsw=7, nivcsw=1, read_bytes=4096, write_bytes=8192, kernel=False)


def test_a_thread_record_dates_its_process_back() -> None:
    thread = stats(ac_pid=4400, ac_flag=0, ac_etime=1_000_000, ac_tgetime=3_500_000)
    (got,) = ts.parse_exits(exit_message(thread, 4400), FAMILY)
    assert (got.pid, got.tgid, got.last) == (4400, 4321, False)
    assert got.start == 1_700_000_000 - 2.5  # the process started 2.5 s before the thread


def test_kernel_threads_and_the_per_process_aggregate() -> None:
    kthread = stats(ac_exe_dev=0, ac_exe_inode=0)
    aggregate = attr(5, attr(2, struct.pack("=I", 4321)) + attr(3, stats()))  # AGGR_TGID
    body = struct.pack("=BBH", ts.TASKSTATS_CMD_NEW, 1, 0)
    data = exit_message(kthread) + message(FAMILY, body + aggregate)
    assert [e.kernel for e in ts.parse_exits(data, FAMILY)] == [True]


def test_old_kernels_are_refused() -> None:
    with pytest.raises(ValueError, match="version 11"):
        list(ts.parse_exits(exit_message(stats(version=11)), FAMILY))
    with pytest.raises(ValueError, match="bytes"):
        ts.parse_stats(stats()[:300])


def test_errors_raise_and_acknowledgements_do_not() -> None:
    ack = message(ts.NLMSG_ERROR, struct.pack("=i", 0) + b"\0" * 16)
    assert list(ts.parse_exits(ack + exit_message(stats()), FAMILY))
    denied = message(ts.NLMSG_ERROR, struct.pack("=i", -errno.EPERM) + b"\0" * 16)
    with pytest.raises(PermissionError):
        list(ts.parse_exits(denied, FAMILY))


def test_family_id_and_requests() -> None:
    answer = message(ts.GENL_ID_CTRL, struct.pack("=BBH", 1, 2, 0)
                     + attr(ts.CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0")
                     + attr(ts.CTRL_ATTR_FAMILY_ID, struct.pack("=H", FAMILY)))
    assert ts.parse_family_id(answer) == FAMILY
    request = ts.register_request(FAMILY, "0-3", 7)
    size, kind, flags, seq = struct.unpack_from("=IHHI", request)
    assert (size, kind, flags, seq) == (len(request), FAMILY, ts.NLM_F_REQUEST | ts.NLM_F_ACK, 7)
    assert request.endswith(b"0-3\0")
