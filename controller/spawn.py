"""Start one process: its own process group, dropped privileges, output to a pipe.

Every child gets PR_SET_PDEATHSIG=SIGKILL so it dies with the controller, even when the
controller is SIGKILLed. Two ways, picked per spawn:

- normally, util-linux's ``setpriv [--reuid/--regid/--groups] --pdeathsig KILL --`` is
  exec'd in front of the program: it drops privileges, then sets the parent-death signal (a
  credential change would clear it). Without a ``preexec_fn`` Popen takes its vfork path,
  and spawning costs ~0.2 ms instead of ~4 ms for fork + preexec in a 50 MB interpreter
  (crash-to-restart latency is mostly this; see benchmarks/controller_restart.py). The
  program's executable is resolved before spawning so that a missing one is still an error
  here, not an exit status of setpriv;
- when setpriv is missing, Popen changes uid/gid itself and a ``preexec_fn`` calls prctl,
  after the uid change.

``subprocess.Popen`` is used for the fork/exec mechanics only. Its pid is watched by the
:class:`~controller.reaper.Reaper`, which is the only code that waits for it; the Popen
object's ``returncode`` is set by hand once reaped so Popen never calls ``waitpid`` itself
(its ``__del__`` would otherwise queue the pid for a later, racing ``waitpid``).
``asyncio.create_subprocess_*`` is not used for the same reason: its child watcher would
reap our children behind the reaper's back.

Socket activation (systemd's protocol: LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID, the sockets
from fd 3) needs the sockets at fixed numbers and the final program's pid in LISTEN_PID
(WATCHDOG_PID likewise). Popen keeps ``pass_fds`` at the numbers they have here, and the
pid is not known before the fork; but every step of the argv (cell entry, rlimits,
setpriv) execs the next in place, so the spawned pid *is* the program's pid. A bash step
therefore moves the sockets down to 3.. and exports ``$$`` (dash only knows fds 0-9).
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import functools
import grp
import logging
import os
import pwd
import shutil
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from procpilot.controller.reaper import PR_SET_PDEATHSIG, Reaper, prctl
from procpilot.controller.states import ExitStatus


@dataclass(frozen=True)
class SpawnSpec:
    """What to run and how; ``env`` is the complete environment of the child."""

    argv: Sequence[str]
    env: Mapping[str, str] | None = None
    cwd: str | None = None
    user: str | int | None = None
    group: str | int | None = None
    capture_output: bool = True  # False: stdout and stderr go to /dev/null
    separate_stderr: bool = False  # capture stderr through a pipe of its own
    sockets: tuple[tuple[str, int], ...] = ()  # (name, fd here): passed from fd 3 on
    pid_env: tuple[str, ...] = ()  # variables set to the program's own pid


LISTEN_FDS_START = 3  # SD_LISTEN_FDS_START: the first passed socket is fd 3
INHERITED_PROTOCOL_ENV = ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES",
                          "WATCHDOG_USEC", "WATCHDOG_PID")
"""Meant for the controller itself (when systemd runs it), never for what it starts."""


def inherited_environment() -> dict[str, str]:
    """The controller's environment as what it starts inherits it."""
    return {k: v for k, v in os.environ.items() if k not in INHERITED_PROTOCOL_ENV}


log = logging.getLogger("procpilot.spawn")

def _pdeathsig_preexec(parent: int) -> Callable[[], None]:
    """Kill the child with SIGKILL when the controller dies, even by SIGKILL.

    Runs in the forked child after the uid/gid change (a credential change would clear it),
    so it only calls the prctl resolved at import. If the controller died before the prctl
    took effect the child was already re-parented and exits at once.
    """

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:
            os._exit(127)

    return preexec


@functools.cache
def _setpriv() -> str | None:
    """Path of a setpriv that knows --pdeathsig (util-linux 2.33+), or None."""
    path = shutil.which("setpriv")
    if path is None:
        return None
    try:
        usage = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=10,
                               check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return path if "--pdeathsig" in usage else None


def _resolve(argv0: str, env: Mapping[str, str] | None, cwd: str | None) -> str:
    """The executable argv0 names, as exec would find it; FileNotFoundError when none."""
    if "/" in argv0:
        path = os.path.join(cwd, argv0) if cwd else argv0
        found = path if os.access(path, os.X_OK) and not os.path.isdir(path) else None
    else:
        found = shutil.which(argv0, path=os.pathsep.join(os.get_exec_path(env)))
    if found is None:
        raise FileNotFoundError(errno.ENOENT, "no such executable", argv0)
    return found


def _credentials(
    user: str | int | None, group: str | int | None
) -> tuple[int | None, int | None, list[int] | None]:
    """uid, gid and supplementary groups to switch to; all None unless running as root."""
    if os.geteuid() != 0 or (user is None and group is None):
        return None, None, None
    uid = gid = None
    groups: list[int] | None = None
    if user is not None:
        try:
            pw = pwd.getpwuid(user) if isinstance(user, int) else pwd.getpwnam(user)
        except KeyError:  # a bare uid with no passwd entry, common in containers
            if not isinstance(user, int):
                raise
            uid, gid, groups = user, user, [user]
        else:
            uid, gid = pw.pw_uid, pw.pw_gid
            groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
    if group is not None:
        gid = group if isinstance(group, int) else grp.getgrnam(group).gr_gid
        if groups is None:
            groups = [gid]
    return uid, gid, groups


class Child:
    """A started process: pid, its exit future and the read ends of its output pipes."""

    def __init__(self, popen: subprocess.Popen[bytes], exited: asyncio.Future[ExitStatus],
                 output_fd: int | None, error_fd: int | None = None) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.exited = exited
        self.output_fd = output_fd
        self.error_fd = error_fd  # with separate_stderr
        exited.add_done_callback(self._mark_reaped)

    def _mark_reaped(self, fut: asyncio.Future[ExitStatus]) -> None:
        if not fut.cancelled():
            self.popen.returncode = fut.result().shell_code

    def signal_group(self, sig: int) -> bool:
        """Send sig to the child's whole process group; False when nothing is left in it."""
        return signal_group(self.pid, sig)


def signal_group(pgid: int, sig: int) -> bool:
    """Send sig (0: only probe) to a process group; False when nothing is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member we may not signal (setuid): still there
        if sig:
            log.warning("cannot signal every process of the group",
                        extra={"fields": {"pgid": pgid, "signal": sig}})
    return True


def _setpriv_credentials(uid: int | None, gid: int | None, groups: list[int] | None,
                         ) -> list[str]:
    """setpriv options that switch to these ids (it sets the parent-death signal after)."""
    options = []
    if uid is not None:
        options.append(f"--reuid={uid}")
    if gid is not None:
        options.append(f"--regid={gid}")
    if groups is not None:
        options.append(f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups")
    return options


@functools.cache
def _bash() -> str:
    path = shutil.which("bash")
    if path is None:
        raise FileNotFoundError(errno.ENOENT, "passing sockets needs bash (dash cannot move "
                                "file descriptors above 9)", "bash")
    return path


def _activation(sources: Sequence[int], pid_env: Sequence[str]) -> list[str]:
    """An argv prefix moving the inherited fds ``sources`` to 3, 4, ... and exporting each
    of ``pid_env`` as its own pid, which the programs it execs keep."""
    steps = []
    if sources:
        moves = [f"{LISTEN_FDS_START + i}<&{fd}" for i, fd in enumerate(sources)]
        steps.append("exec " + " ".join([*moves, *(f"{fd}<&-" for fd in sources)]))
    if pid_env:
        steps.append("export " + " ".join(f"{name}=$$" for name in pid_env))
    if not steps:
        return []
    shell = _bash() if sources else "/bin/sh"
    return [shell, "-c", "; ".join([*steps, 'exec "$@"']), "procpilot-activate"]


def _environment(spec: SpawnSpec) -> dict[str, str] | None:
    """spec's environment, plus what describes the sockets it is passed."""
    if not spec.sockets:
        return dict(spec.env) if spec.env is not None else None
    return {**(spec.env if spec.env is not None else os.environ),
            "LISTEN_FDS": str(len(spec.sockets)),
            "LISTEN_FDNAMES": ":".join(name for name, _ in spec.sockets)}


def spawn(spec: SpawnSpec, reaper: Reaper, prefix: Sequence[str] = ()) -> Child:
    """Fork and exec spec in a new process group; raises OSError/KeyError when it cannot.

    ``prefix`` is exec'd first, as root, and must exec the rest of the argv (the isolation
    cell's entry, rlimits): the socket moves and the credential change come after it.
    Must run on the loop thread: the pid is registered with the reaper before the loop can
    run the SIGCHLD callback, and PR_SET_PDEATHSIG follows the thread that forked.
    """
    uid, gid, groups = _credentials(spec.user, spec.group)
    program = [_resolve(spec.argv[0], spec.env, spec.cwd), *spec.argv[1:]]
    setpriv = _setpriv()
    preexec: Callable[[], None] | None = None
    if setpriv is not None:
        program = [setpriv, *_setpriv_credentials(uid, gid, groups), "--pdeathsig", "KILL",
                   "--", *program]
        uid = gid = None
        groups = None
    else:
        preexec = _pdeathsig_preexec(os.getpid())
    pid_env = ["LISTEN_PID", *spec.pid_env] if spec.sockets else list(spec.pid_env)
    spawn_only: list[int] = []  # fds that are the child's alone once it is spawned
    readers: list[int | None] = [None, None]  # stdout, stderr
    try:
        # Copies numbered above the range they move to: no move overwrites another's source.
        for _, listening in spec.sockets:
            spawn_only.append(fcntl.fcntl(listening, fcntl.F_DUPFD_CLOEXEC,
                                          LISTEN_FDS_START + len(spec.sockets)))
        sources = list(spawn_only)
        argv = [*prefix, *_activation(sources, pid_env), *program]
        writers: list[int] = []
        for i, wanted in enumerate((spec.capture_output,
                                    spec.capture_output and spec.separate_stderr)):
            if wanted:
                readers[i], write_end = os.pipe2(os.O_CLOEXEC)
                writers.append(write_end)
                spawn_only.append(write_end)
        out = writers[0] if writers else subprocess.DEVNULL
        popen = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=writers[1] if len(writers) > 1 else out,
            cwd=spec.cwd,
            env=_environment(spec),
            start_new_session=True,  # no other instance can join its process group
            user=uid,
            group=gid,
            extra_groups=groups,
            pass_fds=sources,
            # Safe with threads here: the hook only calls a pre-resolved C function.
            preexec_fn=preexec,  # noqa: PLW1509
        )
    except BaseException:
        for reader in readers:
            if reader is not None:
                os.close(reader)
        raise
    finally:
        for own in spawn_only:
            os.close(own)
    for reader in readers:
        if reader is not None:
            os.set_blocking(reader, False)
    return Child(popen, reaper.watch(popen.pid), *readers)


async def run_to_exit(spec: SpawnSpec, reaper: Reaper) -> ExitStatus:
    """Spawn spec and wait for its exit; when cancelled (a timeout), kill its whole group."""
    child = spawn(spec, reaper)
    try:
        return await asyncio.shield(child.exited)
    except asyncio.CancelledError:
        child.signal_group(signal.SIGKILL)
        raise
