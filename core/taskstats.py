"""Linux taskstats over generic netlink: the kernel's accounting record of each task
(thread) that exits, sent to every socket registered for the CPU it exited on. This is
the interface of the kernel's ``getdelays`` tool (Documentation/accounting/taskstats.rst).

Pure: builds the request messages and parses what the kernel sends; opening and reading
the socket is the caller's. Registering needs CAP_NET_ADMIN.

Records are per thread (TASKSTATS_TYPE_AGGR_PID). The one of the last thread of a process
carries the AGROUP flag; the kernel then also sends a per-process aggregate
(TASKSTATS_TYPE_AGGR_TGID), which is ignored here: it is only guaranteed to hold the delay
accounting fields, not CPU times or I/O. A process's totals are the sum of its threads'
records. Struct version 12 (Linux 5.19) added what that needs: the thread group id, the
process's wall time, and the executable (zero for kernel threads); older kernels are not
supported.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from typing import NamedTuple

NETLINK_GENERIC = 16
GENL_ID_CTRL = 16
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2
TASKSTATS_CMD_GET = 1
TASKSTATS_CMD_NEW = 2
TASKSTATS_TYPE_STATS = 3
TASKSTATS_TYPE_AGGR_PID = 4
TASKSTATS_CMD_ATTR_PID = 1
TASKSTATS_CMD_ATTR_REGISTER_CPUMASK = 3
NLMSG_ERROR = 2
NLM_F_REQUEST = 1
NLM_F_ACK = 4
NLA_TYPE_MASK = 0x3FFF  # without the nested and byte-order flag bits
AGROUP = 0x20  # linux/acct.h: the last task of its thread group
MIN_VERSION = 12

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_GENL = struct.Struct("=BBH")  # command, version, reserved
_NLA = struct.Struct("=HH")  # length, type
# struct taskstats fields used, at their offsets in linux/taskstats.h (padding as 'x'):
# version, ac_flag, cpu_run_virtual_total, ac_comm, ac_uid, ac_pid, ac_ppid, ac_etime,
# ac_utime, ac_stime, ac_minflt, ac_majflt, read_bytes, write_bytes, nvcsw, nivcsw,
# ac_btime64, ac_tgid, ac_tgetime, ac_exe_dev, ac_exe_inode.
_STATS = struct.Struct("=H6xB63xQ32s8xI4xII8xQQQQQ64xQQ8xQQ56xQ16xI4xQQQ")


class TaskExit(NamedTuple):
    """One thread's record, in base units. Times are microseconds in the record."""

    pid: int  # the thread
    tgid: int  # its process
    last: bool  # the last thread of its process: the process has ended
    comm: str
    ppid: int  # the parent process when the thread exited
    uid: int
    start: float  # wall-clock start of the process, seconds (the record has whole seconds)
    user: float  # CPU seconds, sampled at each timer tick
    system: float
    runtime: float  # CPU seconds the scheduler counted exactly; 0 when the kernel omits it
    minflt: int
    majflt: int
    nvcsw: int  # voluntary context switches
    nivcsw: int
    read_bytes: int
    write_bytes: int
    kernel: bool  # no executable: a kernel thread


def _attr(kind: int, payload: bytes) -> bytes:
    size = _NLA.size + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size % 4)


def _request(family: int, command: int, attrs: bytes, seq: int, flags: int = 0) -> bytes:
    body = _GENL.pack(command, 1, 0) + attrs
    return _NLMSG.pack(_NLMSG.size + len(body), family, NLM_F_REQUEST | flags, seq, 0) + body


def family_request(seq: int) -> bytes:
    """Ask the generic netlink controller for the id of the TASKSTATS family."""
    return _request(GENL_ID_CTRL, CTRL_CMD_GETFAMILY,
                    _attr(CTRL_ATTR_FAMILY_NAME, b"TASKSTATS\0"), seq)


def stats_request(family: int, pid: int, seq: int) -> bytes:
    """Ask for one live task's record (which tells the struct version)."""
    return _request(family, TASKSTATS_CMD_GET, _attr(TASKSTATS_CMD_ATTR_PID,
                                                     struct.pack("=I", pid)), seq)


def register_request(family: int, cpus: str, seq: int) -> bytes:
    """Subscribe to the exits on these CPUs (a list like ``0-3,8``), acknowledged."""
    return _request(family, TASKSTATS_CMD_GET,
                    _attr(TASKSTATS_CMD_ATTR_REGISTER_CPUMASK, cpus.encode() + b"\0"), seq,
                    NLM_F_ACK)


def _attrs(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of each attribute in data[start:end]."""
    while start + _NLA.size <= end:
        size, kind = _NLA.unpack_from(data, start)
        if size < _NLA.size:
            raise ValueError("netlink attribute shorter than its header")
        yield kind & NLA_TYPE_MASK, start + _NLA.size, min(start + size, end)
        start += (size + 3) & ~3


def messages(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, end) of each netlink message in one datagram. An error message
    raises the OSError it carries; an acknowledgement (error 0) is skipped."""
    at = 0
    while at + _NLMSG.size <= len(data):
        size, kind = _NLMSG.unpack_from(data, at)[:2]
        if size < _NLMSG.size:
            raise ValueError("netlink message shorter than its header")
        end = min(at + size, len(data))
        if kind == NLMSG_ERROR:
            code = -struct.unpack_from("=i", data, at + _NLMSG.size)[0]
            if code:
                raise OSError(code, os.strerror(code))
        else:
            yield kind, at + _NLMSG.size, end
        at += (size + 3) & ~3


def parse_family_id(data: bytes) -> int:
    """The family id in the controller's answer; OSError when the kernel has no taskstats."""
    for kind, start, end in messages(data):
        if kind == GENL_ID_CTRL:
            for attr, a, _ in _attrs(data, start + _GENL.size, end):
                if attr == CTRL_ATTR_FAMILY_ID:
                    family: int = struct.unpack_from("=H", data, a)[0]
                    return family
    raise ValueError("no family id in the answer")


def parse_exits(data: bytes, family: int) -> Iterator[TaskExit]:
    """Every per-thread record in one datagram from the taskstats family."""
    for kind, start, end in messages(data):
        if kind != family or _GENL.unpack_from(data, start)[0] != TASKSTATS_CMD_NEW:
            continue
        for attr, a, a_end in _attrs(data, start + _GENL.size, end):
            if attr == TASKSTATS_TYPE_AGGR_PID:
                for inner, b, b_end in _attrs(data, a, a_end):
                    if inner == TASKSTATS_TYPE_STATS:
                        yield parse_stats(data[b:b_end])


def parse_stats(buf: bytes) -> TaskExit:
    """One struct taskstats; ValueError when it is shorter than version 12's or older."""
    if len(buf) < _STATS.size:
        raise ValueError(f"taskstats record of {len(buf)} bytes, want at least {_STATS.size}")
    (version, flag, runtime_ns, comm, uid, pid, ppid, etime, utime, stime, minflt, majflt,
     read_bytes, write_bytes, nvcsw, nivcsw, btime, tgid, tgetime, exe_dev,
     exe_inode) = _STATS.unpack_from(buf)
    if version < MIN_VERSION:
        raise ValueError(f"taskstats version {version}, want {MIN_VERSION} (Linux 5.19) or newer")
    return TaskExit(
        pid, tgid, bool(flag & AGROUP), comm.split(b"\0", 1)[0].decode("utf-8", "replace"),
        ppid, uid, btime - (tgetime - etime) / 1e6, utime / 1e6, stime / 1e6, runtime_ns / 1e9,
        minflt, majflt, nvcsw, nivcsw, read_bytes, write_bytes, exe_dev == 0 and exe_inode == 0,
    )
