"""The controller's YAML config: programs to supervise and how to restart, stop and scale them.

Validation is strict (unknown keys are errors, so ``restrat:`` is caught) and models are frozen
so that two loads compare with ``==``; reload uses that to find changed programs. Values are
normalised on load: durations to float seconds, sizes to int bytes, signals to numbers, users
and groups to numeric ids, commands to argv tuples, CPU targets to cores (the types that do
it are in ``configtypes``). The runtime never parses strings again.

This module holds the top level and a program's sections; the autoscale: section is in
``autoscaleconfig``, the merging of include: files in ``includes``.
"""

from __future__ import annotations

import json
import signal
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    Field,
    SecretStr,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from procpilot.controller import depends
from procpilot.controller.autoscaleconfig import Autoscale
from procpilot.controller.configtypes import (
    Argv,
    Bytes,
    Cores,
    CoreSize,
    EnvValue,
    Gid,
    HttpUrl,
    Seconds,
    SignalNumber,
    Text,
    Uid,
    Umask,
    split_host_port,
)
from procpilot.controller.confinement import Confinement
from procpilot.controller.includes import with_includes
from procpilot.controller.isolation import Limits as CellLimits
from procpilot.controller.protocol import ALL, DEFAULT_SOCKET, MAX_INSTANCES, PROGRAM_NAME
from procpilot.core.configfile import (
    ConfigError,
    Location,
    Strict,
    format_error,
    format_problems,
    load_yaml,
)
from procpilot.core.web.flags import parse_listen_address

__all__ = [
    "DEFAULT_SOCKET", "ConfigError", "ControllerConfig", "ProgramConfig", "json_schema", "load",
]

RESERVED_NAMES = frozenset({ALL})
READY_TIMEOUT = 90.0  # default ready_timeout, systemd's default start timeout


class Control(Strict):
    socket: str = Field(
        default=DEFAULT_SOCKET,
        min_length=1,
        description="Path of the control socket (mode 0600); --control.socket overrides.",
    )
    allowed_uids: tuple[Annotated[int, Field(ge=0)], ...] = Field(
        default=(),
        description="Uids besides the controller's own allowed on the socket: a POSIX ACL on "
        "the socket file lets them connect, SO_PEERCRED refuses every other uid.",
    )


class Restart(Strict):
    policy: Literal["always", "on-failure", "never"] = Field(
        default="always", description="When an exited instance is started again."
    )
    exit_codes: tuple[Annotated[int, Field(ge=0, le=255)], ...] = Field(
        default=(0,), description="Exit codes that count as success (on-failure does not restart)."
    )
    delay: Seconds = Field(default=0.5, description="First backoff delay.")
    factor: float = Field(default=2.0, ge=1, description="Each further delay is this times more.")
    max_delay: Seconds = Field(default=60.0, description="Cap on the backoff delay.")
    jitter: float = Field(
        default=0.1, ge=0, le=1, description="Random spread of each delay, a fraction of it."
    )
    reset_after: Seconds = Field(
        default=60.0, description="Uptime after which the backoff starts again from delay."
    )
    max_restarts: int = Field(
        default=10, ge=0, description="More restarts than this within window -> fatal."
    )
    window: Seconds = Field(default=300.0, gt=0, description="Window of the give-up rule.")

    @model_validator(mode="after")
    def _delays_ordered(self) -> Restart:
        if self.max_delay < self.delay:
            raise ValueError(f"max_delay ({self.max_delay}s) is less than delay ({self.delay}s)")
        return self


class Stop(Strict):
    signal: SignalNumber = Field(
        default=int(signal.SIGTERM), description="Sent to the instance's process group first."
    )
    timeout: Seconds = Field(
        default=10.0, description="Wait after the stop signal before SIGKILL to the group."
    )


class Limits(Strict):
    """Per instance. memory, memory_high, swap, cpu and tasks are kept by the kernel where
    the isolation backend can (cgroups); nofile, core and umask are set on the process."""

    memory: Bytes | None = Field(
        default=None, gt=0,
        description="Memory limit per instance: the cgroup's memory.max (OOM kill beyond it); "
        "without a cgroup backend, the RSS of its process tree checked every check_interval.")
    memory_high: Bytes | None = Field(
        default=None, gt=0,
        description="Throttle and reclaim above this (cgroup v2 memory.high; v1 soft limit).")
    swap: Bytes | None = Field(
        default=None, description="Swap allowed per instance (memory.swap.max; v1 memsw).")
    cpu: Cores | None = Field(
        default=None, gt=0, description="CPU per instance in cores (0.5) or '50%' (cpu.max).")
    tasks: int | None = Field(
        default=None, ge=1, description="Most processes and threads per instance (pids.max).")
    nofile: int | None = Field(
        default=None, ge=1, description="Open files per process (RLIMIT_NOFILE, soft and hard).")
    core: CoreSize | None = Field(
        default=None, description="Largest core dump (RLIMIT_CORE): a size, 0 or 'unlimited'.")
    umask: Umask | None = Field(
        default=None, description="File mode creation mask, octal as a string ('027').")
    check_interval: Seconds = Field(
        default=1.0, ge=0.1,
        description="How often instances without cgroup accounting are measured (>= 100ms).")

    def confinement(self, name: str) -> Confinement:
        """These limits as the runtime applies them to one instance's processes."""
        cell = CellLimits(memory=self.memory, memory_high=self.memory_high, swap=self.swap,
                          cpu=self.cpu, tasks=self.tasks)
        return Confinement(name, cell, nofile=self.nofile, core=self.core, umask=self.umask)

    @model_validator(mode="after")
    def _consistent(self) -> Limits:
        if self.memory_high is not None and self.memory is not None \
                and self.memory_high > self.memory:
            raise ValueError(f"memory_high ({self.memory_high}) is above memory ({self.memory})")
        if self.swap is not None and self.memory is None:
            raise ValueError("swap needs memory: the swap limit comes on top of it")
        return self


class Isolation(Strict):
    """Where the controller puts each instance: a cgroup of its own, or nothing."""

    backend: Literal["auto", "cgroup2", "cgroup1", "none"] = Field(
        default="auto",
        description="auto probes cgroup v2, then v1, then none; --isolation overrides.")
    root: str | None = Field(
        default=None, pattern=r"^/",
        description="An existing cgroup (absolute path in the hierarchy) to put instances "
        "under; default: a subtree of the controller's own cgroup.")


class Logs(Strict):
    directory: str = Field(
        min_length=1, description="Log files are <directory>/<program>-<instance>.log."
    )
    max_size: Bytes = Field(default=10 * 1024**2, gt=0, description="Rotate past this size.")
    backups: int = Field(default=5, ge=0, description="Rotated files kept (.1 is the newest).")
    stderr: Literal["merged", "separate"] = Field(
        default="merged",
        description="merged: stderr in the same file as stdout; separate: in "
        "<program>-<instance>.err.log.")
    timestamps: StrictBool = Field(
        default=False, description="Start each line with the time it was read, RFC 3339 UTC.")


class Health(Strict):
    """Liveness check; failure_threshold failures in a row restart the instance."""

    exec: Argv | None = Field(default=None, description="Command; exit status 0 is healthy.")
    http: HttpUrl | None = Field(default=None, description="URL; a 2xx or 3xx answer is healthy.")
    tcp: str | None = Field(default=None, description="host:port; a connection is healthy.")
    interval: Seconds = Field(default=10.0, gt=0, description="Time between checks.")
    timeout: Seconds = Field(default=2.0, gt=0, description="A check slower than this fails.")
    failure_threshold: int = Field(default=3, ge=1, description="Failures in a row to restart.")
    start_period: Seconds = Field(
        default=0.0, description="Grace after start before failures count."
    )

    @field_validator("tcp")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value)
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> Health:
        given = [k for k in ("exec", "http", "tcp") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"health needs exactly one of exec, http, tcp (got {given or 'none'})")
        return self

    @property
    def tcp_address(self) -> tuple[str, int]:
        """(host, port) of the tcp check; only meaningful when tcp is set."""
        return split_host_port(self.tcp or "")


HookEvent = Literal["started", "ready", "exited", "backoff", "fatal", "memory_kill", "scaled"]
HOOK_EVENTS: tuple[str, ...] = get_args(HookEvent)


class Hook(Strict):
    """A command run, or a URL posted to, on instance events (see hooks.py)."""

    events: tuple[HookEvent, ...] = Field(
        min_length=1, description="Events that run it: " + ", ".join(HOOK_EVENTS) + ".")
    command: Argv | None = Field(
        default=None, description="Run with the event in PROCPILOT_* environment variables.")
    url: HttpUrl | None = Field(default=None, description="http(s) URL the event is POSTed to "
                                "as JSON; a 2xx answer is success.")
    timeout: Seconds = Field(default=10.0, gt=0, description="A slower hook is a failure (a "
                             "command is killed).")

    @model_validator(mode="after")
    def _exactly_one(self) -> Hook:
        if (self.command is None) == (self.url is None):
            raise ValueError("a hook needs exactly one of command, url")
        return self

    @property
    def kind(self) -> str:
        return "command" if self.command is not None else "webhook"


class Rollout(Strict):
    """How a changed program's instances are replaced (reload, restart --rolling)."""

    strategy: Literal["rolling", "all-at-once"] = Field(
        default="rolling", description="rolling: instance by instance, each once the one "
        "before is ready; all-at-once: stop every instance, then start them.")
    max_surge: int = Field(
        default=1, ge=0, le=MAX_INSTANCES, description="Instances replaced at once by starting "
        "the new process first and stopping the old one once the new is ready.")
    max_unavailable: int = Field(
        default=0, ge=0, le=MAX_INSTANCES, description="Ready instances that may be stopped "
        "at once to be replaced (stop first, then start).")

    @model_validator(mode="after")
    def _progress(self) -> Rollout:
        if self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("max_surge and max_unavailable cannot both be 0: nothing could "
                             "be replaced")
        return self


SOCKET_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class Socket(Strict):
    """A listening socket the controller binds and passes to every instance."""

    name: str = Field(pattern=SOCKET_NAME, description="Its name in LISTEN_FDNAMES.")
    listen: str = Field(description="host:port (TCP; ':port' for every interface) or "
                        "unix:/absolute/path.")

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str) -> str:
        if value.startswith("unix:"):
            if not value[5:].startswith("/") or "\0" in value:
                raise ValueError(f"{value!r}: expected unix:/absolute/path")
            return value
        try:
            port = parse_listen_address(value)[1]
        except ValueError as e:
            raise ValueError(str(e)) from None
        if port == 0:
            raise ValueError(f"{value!r}: a shared socket needs a fixed port")
        return value


class ProgramConfig(Strict):
    # Strict so that the before-validator's `is True` test and the field always agree.
    shell: StrictBool = Field(
        default=False, description="Run the command string with /bin/sh -c (else: no shell)."
    )
    command: Argv = Field(description="argv list, or a string split with shell-like quoting.")
    environment: dict[Text, EnvValue] = Field(
        default={}, description="Added to the controller's environment; a value given as "
        "{value: ..., secret: true} never appears in status, logs, metrics or errors."
    )
    directory: str | None = Field(default=None, min_length=1, description="Working directory.")
    user: Uid | None = Field(
        default=None, ge=0, description="Run as this user (name or uid); controller must be root."
    )
    group: Gid | None = Field(
        default=None, ge=0, description="Run as this group (name or gid); default: user's group."
    )
    instances: int = Field(default=1, ge=0, le=MAX_INSTANCES,
                           description="Fixed count (not with autoscale).")
    priority: int = Field(default=100, description="Lower starts first and stops last.")
    autostart: bool = Field(default=True, description="Start when the controller starts.")
    start_seconds: Seconds = Field(
        default=1.0, description="An exit sooner than this after start is a failed start."
    )
    restart: Restart = Restart()
    stop: Stop = Stop()
    limits: Limits = Limits()
    logs: Logs | None = Field(
        default=None,
        description="Log files; absent: controller's stderr, lines prefixed 'program:instance | '.",
    )
    health: Health | None = None
    autoscale: Autoscale | None = Field(default=None, description="Pool scaled on CPU usage.")
    ready: Literal["start_seconds", "notify", "health"] = Field(
        default="start_seconds", description="When an instance is ready (running): up for "
        "start_seconds; when it sends READY=1 (sd_notify); or at its first passing health check.")
    ready_timeout: Seconds | None = Field(
        default=None, gt=0, description="With ready notify or health: not ready this long after "
        "its start -> restart with reason ready_timeout (default 90s).")
    watchdog: Seconds | None = Field(
        default=None, gt=0, description="With ready: notify: once ready, no WATCHDOG=1 within "
        "this long -> restart with reason watchdog.")
    depends_on: tuple[Annotated[str, Field(pattern=PROGRAM_NAME)], ...] = Field(
        default=(), description="Programs that must be ready before this one starts; it stops "
        "before them.")
    hooks: tuple[Hook, ...] = Field(default=(), description="Commands or webhooks run on this "
                                    "program's events.")
    rollout: Rollout = Rollout()
    sockets: tuple[Socket, ...] = Field(
        default=(), description="Listening sockets passed to every instance (LISTEN_FDS, fds "
        "from 3, in this order).")

    @model_validator(mode="before")
    @classmethod
    def _shell_command(cls, data: Any) -> Any:
        """With shell: true the command string goes to /bin/sh -c as one argument."""
        if isinstance(data, dict) and data.get("shell") is True:
            command = data.get("command")
            if not isinstance(command, str):
                raise ValueError("shell: true needs command as one string")
            data = {**data, "command": ["/bin/sh", "-c", command]}
        return data

    @field_validator("environment")
    @classmethod
    def _env_names(cls, value: dict[str, str | SecretStr]) -> dict[str, str | SecretStr]:
        for key, text in value.items():
            plain = text.get_secret_value() if isinstance(text, SecretStr) else text
            if not key or "=" in key or "\0" in key or "\0" in plain:
                raise ValueError(f"{key!r}: not a valid environment variable")
        return value

    def env(self) -> dict[str, str]:
        """The environment it adds, secrets revealed: for the child's exec only."""
        return {k: v.get_secret_value() if isinstance(v, SecretStr) else v
                for k, v in self.environment.items()}

    @model_validator(mode="after")
    def _instances_or_autoscale(self) -> ProgramConfig:
        if self.autoscale is not None and "instances" in self.model_fields_set:
            raise ValueError("instances and autoscale are mutually exclusive; use one")
        return self

    @model_validator(mode="after")
    def _readiness(self) -> ProgramConfig:
        if self.ready == "health" and self.health is None:
            raise ValueError("ready: health needs a health section")
        if self.ready == "start_seconds" and self.ready_timeout is not None:
            raise ValueError("ready_timeout applies to ready: notify or health")
        if self.ready != "start_seconds" and "start_seconds" in self.model_fields_set:
            raise ValueError(f"start_seconds does not apply to ready: {self.ready} (it is ready "
                             "when it says so; ready_timeout bounds the wait)")
        if self.watchdog is not None and self.ready != "notify":
            raise ValueError("watchdog needs ready: notify (WATCHDOG=1 comes over NOTIFY_SOCKET)")
        return self

    @model_validator(mode="after")
    def _unique_sockets(self) -> ProgramConfig:
        for key in ("name", "listen"):
            values = [getattr(sock, key) for sock in self.sockets]
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"sockets: {key} {twice[0]!r} appears twice")
        return self

    @property
    def ready_seconds(self) -> float:
        """How long ready: notify or health may take (ready_timeout, default 90s)."""
        return self.ready_timeout if self.ready_timeout is not None else READY_TIMEOUT


class ControllerConfig(Strict):
    """Top level of --config.file."""

    control: Control = Control()
    isolation: Isolation = Isolation()
    include: tuple[str, ...] = Field(
        default=(), description="More files of programs: paths, directories (their *.yaml "
        "and *.yml) or glob patterns, relative to this file. They hold only programs:.")
    hooks: tuple[Hook, ...] = Field(default=(), description="Hooks run on every program's "
                                    "events.")
    programs: dict[
        Annotated[str, Field(pattern=PROGRAM_NAME)], ProgramConfig
    ] = Field(default={}, description="Programs by name ([A-Za-z0-9][A-Za-z0-9_.-]*, not 'all').")

    @field_validator("programs")
    @classmethod
    def _not_reserved(cls, value: dict[str, ProgramConfig]) -> dict[str, ProgramConfig]:
        for name in value:
            if name in RESERVED_NAMES:
                raise ValueError(f"{name!r} is reserved (procpilotctl uses it for every program)")
        return value

    def problems(self) -> list[tuple[Location, str]]:
        """What a single program's model cannot see: depends_on naming unknown programs,
        later priorities or cycles, and a socket address two programs listen on."""
        found: list[tuple[Location, str]] = [
            (("programs", name, "depends_on"), why) for name, why in depends.problems(
                {n: p.depends_on for n, p in self.programs.items()},
                {n: p.priority for n, p in self.programs.items()}).items()]
        owner: dict[str, str] = {}
        for name, program in self.programs.items():
            for sock in program.sockets:
                if sock.listen in owner:
                    found.append((("programs", name, "sockets"),
                                  f"{sock.listen} is also a socket of {owner[sock.listen]}"))
                owner.setdefault(sock.listen, name)
        return found


def parse(data: Any, source: str) -> ControllerConfig:
    """Validate already-parsed YAML with its includes; errors name the file of each key."""
    data, sources = with_includes(data, source)

    def file_of(loc: Location) -> str:
        in_programs = len(loc) > 1 and loc[0] == "programs"
        return sources.get(str(loc[1]), source) if in_programs else source

    try:
        config = ControllerConfig.model_validate({} if data is None else data)
    except ValidationError as e:
        raise ConfigError(format_error(source, e, file_of)) from None
    problems = config.problems()
    if problems:
        raise ConfigError(format_problems(problems, file_of))
    return config


def load(path: str) -> ControllerConfig:
    """Read and validate --config.file; every failure is a ConfigError naming file and key."""
    return parse(load_yaml(path), path)


def json_schema() -> str:
    """JSON Schema of the config file, for editors (shipped as controller/config.schema.json)."""
    schema = ControllerConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "procpilot controller configuration"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
