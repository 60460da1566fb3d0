"""Config problems for people: each line names the file and the field, in YAML terms."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError


class ConfigError(ValueError):
    """One or more problems in city config files; each line names the file and the field."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


def format_validation_error(filename: str, exc: ValidationError) -> list[str]:
    """pydantic's errors for one file as ``<file>: <field>: <problem>`` lines."""
    problems = []
    for error in exc.errors():
        path = _field_path(error["loc"])
        message = _error_text(error)
        if error["type"] == "value_error" and path == "(top level)":
            problems.extend(f"{filename}: {part}" for part in message.split("\n"))
        else:
            problems.append(f"{filename}: {path}: {message}")
    return problems


def _field_path(loc: Iterable[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before") or str(part).startswith("function-"):
            continue
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


_MESSAGES = {
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "less_than_equal": "must be <= {le}",
    "less_than": "must be < {lt}",
    "extra_forbidden": "unknown key; check the spelling against docs/config-reference.md",
    "missing": "required field is missing",
    "string_pattern_mismatch": "must match {pattern}",
    "too_short": "needs at least {min_length} item(s)",
    "too_long": "allows at most {max_length} item(s)",
}


def _error_text(error: dict[str, Any]) -> str:
    """One pydantic error as a phrase a config author can act on, with the offending value where it helps."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind in _MESSAGES:
        message = _MESSAGES[kind].format(**{k: f"{v:g}" if isinstance(v, float) else v for k, v in ctx.items()})
    elif kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
    else:
        message = error["msg"][0].lower() + error["msg"][1:]
    if kind not in ("missing", "value_error") and "input" in error and not isinstance(error["input"], dict):
        message += f", got {error['input']!r}"
    return message
