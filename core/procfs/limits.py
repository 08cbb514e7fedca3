"""/proc/<pid>/limits: the resource limits of a process, here the one on open files."""

from __future__ import annotations

from procpilot.core.procfs.files import labeled


def parse_open_files_limit(data: bytes) -> int | None:
    """The soft RLIMIT_NOFILE ("Max open files"), None when unlimited.

    The line is ``Max open files  <soft>  <hard>  files``, so the first word after the
    label is the soft limit: the one open(2) fails at with EMFILE.
    """
    soft = labeled(data, b"Max open files")
    return None if soft == b"unlimited" else int(soft)
