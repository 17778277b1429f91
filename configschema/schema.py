"""Sections of a config as frozen dataclasses whose fields carry their check in ``Annotated``.

A field's default is the key's default; a field without one is a required key. ``check_sections``
checks a parsed TOML table section by section and collects every problem, each naming its key.
"""

from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Any, get_type_hints

from configschema.values import MASK, Check, Invalid, Secret, type_name


class ConfigError(ValueError):
    """The configuration is invalid; ``errors`` lists every problem, each starting with its key."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = list(errors)
        count = f"{len(self.errors)} error{'s' if len(self.errors) != 1 else ''}"
        super().__init__(f"invalid configuration ({count}):\n" + "\n".join(f"  {e}" for e in self.errors))


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError([f"{path}: cannot read: {error.strerror or error}"]) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError([f"{path}: not valid TOML: {error}"]) from None


def merge_secrets(data: dict[str, Any], secrets_path: Path) -> dict[str, Any]:
    """The secrets file's sections merged over ``data`` key by key."""
    for section_name, table in read_toml(secrets_path).items():
        base = data.get(section_name, {})
        both_tables = isinstance(base, dict) and isinstance(table, dict)
        data[section_name] = base | table if both_tables else table
    return data


def suggestion(word: str, known: object) -> str:
    import difflib  # only for a config with a mistake in it: not on every start of the phone

    matches = difflib.get_close_matches(word, list(known), n=1)  # type: ignore[call-overload]
    return f", did you mean '{matches[0]}'?" if matches else ""


def section_checks(section: type) -> dict[str, Check]:
    """The check of every key of a section: the metadata of its ``Annotated`` type."""
    hints = get_type_hints(section, include_extras=True)
    return {f.name: hints[f.name].__metadata__[0] for f in dataclasses.fields(section)}


def check_section(
    section_name: str, section: type, table: dict[str, Any], errors: list[str]
) -> dict[str, Any]:
    checks = section_checks(section)
    checked: dict[str, Any] = {}
    for key, raw in table.items():
        if key not in checks:
            errors.append(f"{section_name}.{key}: unknown key{suggestion(key, checks)}")
            continue
        try:
            checked[key] = checks[key](raw)
        except Invalid as error:
            errors.append(f"{section_name}.{key}: {error}")
    return checked


def with_defaults(section: type, checked: dict[str, Any]) -> dict[str, Any]:
    values = dict(checked)
    for f in dataclasses.fields(section):
        if f.name not in values:
            if f.default is not dataclasses.MISSING:
                values[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                values[f.name] = f.default_factory()
            else:
                values[f.name] = None
    return values


def require(section_name: str, section: type, table: dict[str, Any], errors: list[str]) -> None:
    for f in dataclasses.fields(section):
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing and f.name not in table:
            errors.append(f"{section_name}.{f.name}: required key is missing")


def check_sections(
    data: dict[str, Any], sections: dict[str, type], errors: list[str], required: tuple[str, ...] = ()
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every section checked and completed with defaults, and the tables as given in the file.

    A section's required keys are required when the section is given or is in ``required``.
    """
    given: dict[str, dict[str, Any]] = {}
    checked: dict[str, dict[str, Any]] = {}
    for section_name, table in data.items():
        if section_name not in sections:
            errors.append(f"{section_name}: unknown section{suggestion(section_name, sections)}")
        elif not isinstance(table, dict):
            errors.append(f"{section_name}: must be a table, got {type_name(table)}")
        else:
            given[section_name] = table
            checked[section_name] = check_section(section_name, sections[section_name], table, errors)
    values = {name: with_defaults(section, checked.get(name, {})) for name, section in sections.items()}
    for section_name, section in sections.items():
        if section_name in given or section_name in required:
            require(section_name, section, given.get(section_name, {}), errors)
    return values, given


def resolve_paths(values: dict[str, dict[str, Any]], base_dir: Path | None) -> None:
    """Relative paths are taken from the config file's directory."""
    if base_dir is None:
        return
    for section in values.values():
        for key, value in section.items():
            if isinstance(value, Path) and not value.is_absolute():
                section[key] = base_dir / value


def render(config: Any, show_secrets: bool = False) -> str:
    """TOML text of every section and key of a config dataclass, defaults included; secrets masked."""
    blocks = []
    for section in dataclasses.fields(config):
        values = getattr(config, section.name)
        lines = [f"[{section.name}]"]
        for key in dataclasses.fields(values):
            lines.append(f"{key.name} = {_toml_value(getattr(values, key.name), show_secrets)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def _toml_value(value: Any, show_secrets: bool) -> str:
    import json  # rendering only (check-config --show): not on every start of the phone

    if isinstance(value, Secret):
        if show_secrets:
            return json.dumps(value.reveal(), ensure_ascii=False)
        return json.dumps(MASK if value else "")
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, tuple | list):
        return "[" + ", ".join(_toml_value(item, show_secrets) for item in value) + "]"
    if isinstance(value, dict):
        items = ", ".join(f"{json.dumps(str(k))} = {_toml_value(v, show_secrets)}" for k, v in value.items())
        return "{" + items + "}"
    if value is None:
        return '""'
    if isinstance(value, Path):
        value = str(value)
    return json.dumps(value, ensure_ascii=False)
