"""The exporter's YAML config: groups of processes, top-N size, orphan exclusions.

Validation is strict (unknown keys are errors) and every error names the file, the key
path and what was expected, because a silently ignored typo in a matcher means a group
that quietly reports zero forever.
"""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import Field, ValidationError, field_validator, model_validator

from procpilot.core.configfile import ConfigError, Strict, format_error, load_yaml

PLACEHOLDER = re.compile(r"\{(\w+)\}")
OWNER_FIELDS = ("cgroup", "unit", "container", "program")
BUILTIN_FIELDS = ("comm", "exe_basename", "exe_path", "user", *OWNER_FIELDS)


class Group(Strict):
    """Processes matched by every selector given; the first group that matches wins."""

    name: Annotated[
        str,
        Field(
            min_length=1,
            description="Group name, or a template: {comm}, {exe_basename}, {exe_path}, "
            "{user}, the owner fields {cgroup}, {unit}, {container}, {program}, or a named "
            "capture of the cmdline regex, e.g. '{comm}', '{unit}' or 'java-{app}'. A "
            "process for which one of the fields has no value does not match the group.",
        ),
    ]
    comm: list[str] = Field(default=[], description="Any of these comm values (exact).")
    exe: list[str] = Field(
        default=[], description="Any of these executables: a full path or a basename."
    )
    cmdline: str | None = Field(
        default=None,
        description="Python regex searched in the arguments joined by spaces; "
        "named captures can be used in the name.",
    )
    per_process: bool = Field(
        default=False, description="Also export per-process RSS series for this group."
    )
    max_series: Annotated[int, Field(ge=0)] = Field(
        default=100,
        description="Cap on per-process series of this group; the rest are counted as dropped.",
    )
    children: bool = Field(
        default=False,
        description="Descendants of a member that match no group themselves are members too.",
    )
    swap: bool = Field(default=True, description="Export swapped-out memory (reads status).")
    context_switches: bool = Field(
        default=True, description="Export context switches (reads status)."
    )
    io: bool = Field(default=True, description="Export storage read/write bytes (reads io).")
    fds: bool = Field(
        default=True,
        description="Export open fds and the worst ratio to the open files limit (stats the "
        "fd directory; limits cached per process).",
    )
    pss: bool = Field(
        default=False,
        description="Export proportional memory, PSS and SwapPss (reads smaps_rollup: costly).",
    )

    @field_validator("cmdline")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as e:
                raise ValueError(f"not a valid regular expression: {e}") from None
        return value

    @model_validator(mode="after")
    def _selectors_and_template(self) -> Group:
        if not (self.comm or self.exe or self.cmdline):
            raise ValueError("a group needs at least one of comm, exe or cmdline")
        captures = set(re.compile(self.cmdline).groupindex) if self.cmdline else set()
        for field_name in PLACEHOLDER.findall(self.name):
            if field_name not in BUILTIN_FIELDS and field_name not in captures:
                raise ValueError(
                    f"name uses {{{field_name}}}, which is neither one of "
                    f"{', '.join(BUILTIN_FIELDS)} nor a named capture of cmdline"
                )
        return self

    @property
    def is_static(self) -> bool:
        """True when the name has no placeholders, so the group is known before any match."""
        return not PLACEHOLDER.search(self.name)


class Orphans(Strict):
    exclude: list[str] = Field(
        default=[],
        description="comm values never reported as orphans (e.g. double-forking daemons).",
    )


class ExporterConfig(Strict):
    """Top level of --config.file."""

    top_processes: Annotated[int, Field(ge=0, le=100)] = Field(
        default=10, description="How many processes the top-N views export."
    )
    max_groups: Annotated[int, Field(ge=1)] = Field(
        default=1000, description="Cap on distinct group names made by templates (static "
        "names are not counted). A made name with no member and no ended process credited "
        "for 10 minutes is dropped, its series end, and it frees its place."
    )
    max_label_length: Annotated[int, Field(ge=32)] = Field(
        default=256,
        description="Longest label value (characters) made from process data (group names "
        "by template, owners); longer ones are cut and end in '~' and a hash of the whole.",
    )
    max_scrape_series: Annotated[int, Field(ge=1)] = Field(
        default=50_000,
        description="Cap on the series the collectors produce per scrape; the rest are "
        "dropped and counted (the exporter's own metrics are always exported).",
    )
    top_owner: bool = Field(
        default=False,
        description="Add an owner label (program:, container:, pod: or unit: and its name, "
        "from the cgroup) to the top-N views.",
    )
    orphans: Orphans = Orphans()
    groups: list[Group] = Field(default=[])


def load(path: str | None) -> ExporterConfig:
    """Load and validate the config; no file means the defaults."""
    if path is None:
        return ExporterConfig()
    data = load_yaml(path)
    try:
        return ExporterConfig.model_validate({} if data is None else data)
    except ValidationError as e:
        raise ConfigError(format_error(path, e)) from None


def json_schema() -> str:
    """JSON Schema of the config file, for editors (shipped as exporter/config.schema.json)."""
    schema = ExporterConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "procpilot exporter configuration"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
