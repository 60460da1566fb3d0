"""Loading city configs: ``<city>.yaml`` merged over ``_defaults.yaml``, every problem collected with its file."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from airflow_ml_provider.config.city import CITY_NAME_PATTERN, CityConfig
from airflow_ml_provider.config.errors import ConfigError, format_validation_error
from airflow_ml_provider.config.sections import DEFAULTS_FILE

CONFIG_DIR_ENV = "AIRFLOW_ML_CONFIG_DIR"


def config_dir() -> Path:
    """The city config folder: ``$AIRFLOW_ML_CONFIG_DIR``, else ``dags/configs`` of the current project."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or "dags/configs")


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists included) in ``override`` replaces ``base``."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# libyaml's C parser when PyYAML was built with it (the wheels are): ~10x faster than the pure-Python one, which was
# half of the DAG folder's parse time. Same safe constructors, same error marks.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise ConfigError([f"{path.name}: file not found in {path.parent}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path.name}: not valid YAML{where}: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{path.name}: expected a mapping of settings at the top level, got {type(data).__name__}"])
    return data


_defaults_cache: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def load_defaults(directory: Path) -> dict[str, Any]:
    """``_defaults.yaml`` of the folder, parsed once per process while the file is unchanged (mtime and size).

    A DagBag over N city files reads it N times otherwise. Each caller gets its own copy to merge into.
    """
    path = directory / DEFAULTS_FILE
    try:
        stat = path.stat()
    except FileNotFoundError:
        return {}
    key, stamp = path.resolve(), (stat.st_mtime_ns, stat.st_size)
    cached = _defaults_cache.get(key)
    if cached is None or cached[0] != stamp:
        cached = stamp, _read_yaml(path)
        _defaults_cache[key] = cached
    return copy.deepcopy(cached[1])


def load_city_config(city: str, directory: Path | None = None, defaults: dict[str, Any] | None = None) -> CityConfig:
    """Load ``<directory>/<city>.yaml`` over ``_defaults.yaml``; raise ConfigError naming the file and the field."""
    directory = directory or config_dir()
    filename = f"{city}.yaml"
    if defaults is None:
        defaults = load_defaults(directory)
    raw = _read_yaml(directory / filename)
    problems: list[str] = []
    if "allowed_estimator_prefixes" in (raw.get("model") or {}):
        problems.append(
            f"{filename}: model.allowed_estimator_prefixes: may only be set in {DEFAULTS_FILE} "
            "(the platform team decides which estimator modules are allowed)"
        )
    if raw.get("city", city) != city:
        problems.append(f"{filename}: city: must equal the file name {city!r}, got {raw['city']!r}")
    merged = deep_merge(defaults, raw)
    merged.setdefault("city", city)
    try:
        config = CityConfig.model_validate(merged)
    except ValidationError as exc:
        problems.extend(format_validation_error(filename, exc))
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return config


def city_names(directory: Path | None = None) -> list[str]:
    """City names of the ``<city>.yaml`` files in the folder (``_``-prefixed files are not cities)."""
    directory = directory or config_dir()
    return sorted(p.stem for p in directory.glob("*.yaml") if not p.name.startswith("_"))


def load_all(directory: Path | None = None) -> tuple[dict[str, CityConfig], list[str]]:
    """Every city config in the folder, and the problems of the ones that failed (each names its file)."""
    directory = directory or config_dir()
    configs: dict[str, CityConfig] = {}
    problems: list[str] = []
    try:
        defaults = load_defaults(directory)
    except ConfigError as exc:
        return {}, exc.problems
    for city in city_names(directory):
        if not re.fullmatch(CITY_NAME_PATTERN, city):
            problems.append(f"{city}.yaml: the file name must be a city name matching {CITY_NAME_PATTERN}")
            continue
        try:
            configs[city] = load_city_config(city, directory, defaults)
        except ConfigError as exc:
            problems.extend(exc.problems)
    return configs, problems
