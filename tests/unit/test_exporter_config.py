"""Exporter config: strict validation with file, key path and expectation in every error."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from procpilot.core.configfile import ConfigError
from procpilot.exporter import config

SCHEMA = Path(config.__file__).with_name("config.schema.json")
EXAMPLES = Path(__file__).parents[2] / "examples"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "exporter.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("text", "key", "expected"),
    [
        ("groups:\n  - name: x\n    comms: [a]\n", "groups.0.comms", "Extra inputs"),
        ("groups:\n  - name: x\n", "groups.0", "at least one of comm, exe or cmdline"),
        ("groups:\n  - name: x\n    cmdline: '(['\n", "groups.0.cmdline", "regular expression"),
        ("groups:\n  - name: '{nope}'\n    comm: [a]\n", "groups.0", "{nope}"),
        ("top_processes: many\n", "top_processes", "valid integer"),
        ("orphans: [a]\n", "orphans", "valid dictionary"),
    ],
)
def test_errors_name_file_key_and_expectation(
    tmp_path: Path, text: str, key: str, expected: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert path in message
    assert f"  {key}: " in message
    assert expected in message


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"line 3.*'top_processes' appears twice"):
        config.load(write(tmp_path, "top_processes: 3\ngroups: []\ntop_processes: 4\n"))


def test_binary_file_and_unhashable_key_are_config_errors(tmp_path: Path) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="not UTF-8"):
        config.load(str(binary))
    with pytest.raises(ConfigError, match="mapping key"):
        config.load(write(tmp_path, "? [a, b]\n: 1\n"))


def test_yaml_syntax_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(write(tmp_path, "groups: [\n"))
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(str(tmp_path / "missing.yaml"))


def test_empty_file_and_no_file_mean_defaults(tmp_path: Path) -> None:
    assert config.load(write(tmp_path, "")) == config.ExporterConfig()
    assert config.load(None).top_processes == 10



def test_example_config_is_valid_for_model_and_schema() -> None:
    path = EXAMPLES / "exporter.yaml"
    config.load(str(path))
    schema = yaml.safe_load(SCHEMA.read_text())
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(path.read_text()))
