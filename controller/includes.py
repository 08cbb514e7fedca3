"""include: in the controller's config: more files of programs, merged into the main one.

An included file holds only ``programs:``; a program defined twice is an error naming both
files. The file each program came from is kept, so that validation errors name it.
"""

from __future__ import annotations

import glob
import os
from typing import Any

from procpilot.core.configfile import ConfigError, load_yaml

MAX_INCLUDED_FILES = 1000


def included_files(patterns: object, path: str) -> list[str]:
    """The files include: names, in order, each once; the main file itself is left out."""
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        return []  # the model reports the type error
    base = os.path.dirname(os.path.abspath(path))
    files: list[str] = []
    for pattern in patterns:
        where = os.path.join(base, pattern)
        if any(c in pattern for c in "*?["):
            found = sorted(f for f in glob.glob(where) if os.path.isfile(f))
        elif os.path.isdir(where):
            found = sorted(os.path.join(where, f) for f in os.listdir(where)
                           if f.endswith((".yaml", ".yml"))
                           and os.path.isfile(os.path.join(where, f)))
        elif os.path.isfile(where):
            found = [where]
        elif os.path.exists(where):  # a FIFO or device would block or never end
            raise ConfigError(f"{path}: include: {pattern!r}: not a regular file or directory")
        else:
            raise ConfigError(f"{path}: include: {pattern!r}: no such file or directory")
        files += [f for f in found if f not in files and not os.path.samefile(f, path)]
        if len(files) > MAX_INCLUDED_FILES:
            raise ConfigError(f"{path}: include: more than {MAX_INCLUDED_FILES} files")
    return files


def with_includes(data: Any, path: str) -> tuple[Any, dict[str, str]]:
    """data with the programs of its included files added, and the file of each program."""
    if not isinstance(data, dict) or not isinstance(data.get("programs") or {}, dict):
        return data, {}
    programs = dict(data.get("programs") or {})
    sources = dict.fromkeys(programs, path)
    for file in included_files(data.get("include", []), path):
        more = load_yaml(file)
        if more is None:
            continue
        if not isinstance(more, dict) or set(more) - {"programs"} \
                or not isinstance(more.get("programs") or {}, dict):
            raise ConfigError(f"{file}: invalid configuration\n  (top level): an included "
                              "file holds only programs: (a map of name to program)")
        for name, body in (more.get("programs") or {}).items():
            if name in sources:
                raise ConfigError(f"{file}: invalid configuration\n  programs.{name}: "
                                  f"already defined in {sources[name]}")
            sources[name] = file
            programs[name] = body
    return {**data, "programs": programs}, sources
