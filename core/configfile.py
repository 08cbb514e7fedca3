"""Loading YAML config files strictly, shared by both services' configs and the web config.

Every failure becomes a :class:`ConfigError` whose text names the file, the key path and what
was expected, because a silently ignored typo in a config means a feature that quietly does
nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

MAX_BYTES = 8 * 2**20  # a config file larger than this is a mistake (or an attack)
MAX_NODES = 1_000_000  # values, counting each use of a YAML alias


class ConfigError(Exception):
    """A config file that cannot be used; str() is the message for the operator."""


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors, and loaded values compare by ==."""

    model_config = ConfigDict(extra="forbid", frozen=True)


Location = tuple[str | int, ...]


def format_error(path: str, err: ValidationError,
                 file_of: Callable[[Location], str] | None = None) -> str:
    """One block per file: its name, then each error's key path and message. ``file_of``
    names the file a key came from when the config spans several (else all are ``path``)."""
    return format_problems([(e["loc"], e["msg"].removeprefix("Value error, "))
                            for e in err.errors()], lambda loc: file_of(loc) if file_of else path)


def format_problems(problems: list[tuple[Location, str]], file_of: Callable[[Location], str]
                    ) -> str:
    blocks: dict[str, list[str]] = {}
    for loc, message in problems:
        key = ".".join(str(p) for p in loc) or "(top level)"
        blocks.setdefault(file_of(loc), []).append(f"  {key}: {message}")
    return "\n".join(line for file, lines in blocks.items()
                     for line in [f"{file}: invalid configuration", *lines])


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice: YAML would silently keep the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _too_big(data: Any, limit: int) -> bool:
    """Whether data, with every YAML alias expanded, has more than limit nodes.

    Aliases share one object, so a few lines of anchors can stand for billions of nodes
    that validation would then visit one by one; counting stops as soon as it passes limit.
    """
    stack, seen = [data], 0
    while stack:
        seen += 1
        if seen > limit:
            return True
        node = stack.pop()
        if isinstance(node, dict):
            stack += node.keys()
            stack += node.values()
        elif isinstance(node, list):
            stack += node
    return False


def load_yaml(path: str) -> Any:
    """Read a YAML file, turning I/O, size and syntax problems into ConfigError."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path}: larger than {MAX_BYTES // 2**20} MiB; not a config file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as e:
        # Only the position: the error's snippet of the file could carry a secret.
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or "syntax error"
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    except TypeError:  # e.g. a list used as a mapping key
        raise ConfigError(f"{path}: not valid YAML: a mapping key must be a plain value") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply") from None
    if _too_big(data, MAX_NODES):
        raise ConfigError(f"{path}: more than {MAX_NODES} values once its YAML aliases are "
                          "expanded")
    return data
