"""Loading city configs: ``<city>.yaml`` merged over ``_defaults.yaml``, every problem collected with its file."""

from __future__ import annotations

import copy
import os
import re
import time
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from pydantic import ValidationError

from airflow_ml_provider.config.city import CITY_NAME_PATTERN, CityConfig
from airflow_ml_provider.config.errors import ConfigError, format_validation_error
from airflow_ml_provider.config.sections import DEFAULTS_FILE, MODEL_NAME_PATTERN, RegistryConfig

CONFIG_DIR_ENV = "AIRFLOW_ML_CONFIG_DIR"


def config_dir(dags_folder: Path = Path("dags")) -> Path:
    """The city config folder: ``$AIRFLOW_ML_CONFIG_DIR``, else ``configs`` in the DAG folder (by default ``dags/`` of
    the current project; the loader files pass their own folder, the fleet page Airflow's ``dags_folder``)."""
    return Path(os.environ.get(CONFIG_DIR_ENV) or dags_folder / "configs")


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


def read_yaml(path: Path) -> dict[str, Any]:
    """A config file's top-level mapping (empty for an empty file); ConfigError naming the file and what is wrong."""
    try:
        data = yaml.load(path.read_text(), Loader=_YAML_LOADER)
    except FileNotFoundError:
        raise ConfigError([f"{path.name}: file not found in {path.parent}"]) from None
    except OSError as exc:
        raise ConfigError([f"{path.name}: cannot be read: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{path.name}: not valid YAML{where}: {problem}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{path.name}: not UTF-8 text (byte {exc.start}); save the file as UTF-8"]) from None
    except RecursionError:
        raise ConfigError([f"{path.name}: not valid YAML: nested too deeply"]) from None
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
        cached = stamp, read_yaml(path)
        _defaults_cache[key] = cached
    return copy.deepcopy(cached[1])


def load_city_config(city: str, directory: Path | None = None, defaults: dict[str, Any] | None = None) -> CityConfig:
    """Load ``<directory>/<city>.yaml`` over ``_defaults.yaml``; raise ConfigError naming the file and the field."""
    directory = directory or config_dir()
    filename = f"{city}.yaml"
    if defaults is None:
        defaults = load_defaults(directory)
    raw = read_yaml(directory / filename)
    problems: list[str] = []
    model = raw.get("model")
    if isinstance(model, dict) and "allowed_estimator_prefixes" in model:
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
    problems.extend(model_name_problems(config, directory, defaults))
    if problems:
        raise ConfigError(problems)
    return config


def _default_model_name(defaults: dict[str, Any]) -> str:
    registry = defaults.get("registry")
    name = registry.get("model_name") if isinstance(registry, dict) else None
    return name if isinstance(name, str) else RegistryConfig.model_fields["model_name"].default


class _CityFile(NamedTuple):
    path: str
    stamp: tuple[int, int]  # mtime_ns, size
    text: bytes


# path -> the file as last read: a city file's bytes, read once per process while it is unchanged
_TEXT_CACHE: dict[str, _CityFile] = {}
# path -> (stamp, name): the registry.model_name a city file sets, parsed once per process while it is unchanged
_NAME_CACHE: dict[str, tuple[tuple[int, int], str | None]] = {}
# folder -> (its file names, when its files were last stat'ed, the city files): see _city_files
_FOLDER_CACHE: dict[str, tuple[frozenset[str], float, dict[str, _CityFile]]] = {}
# How long a process trusts its last look at a folder's city files while no file was added, removed or renamed.
FOLDER_RECHECK_SECONDS = 1.0


def _city_files(directory: Path) -> dict[str, _CityFile]:
    """Every ``<city>.yaml`` in the folder with its raw bytes, by city; a file that cannot be read is left out.

    A process loading every city of a folder (a DagBag fill, lint) would otherwise stat every file for every city:
    quadratic, seconds at a thousand cities. Files added, removed or renamed are seen at once (the folder is listed
    on every call); a file rewritten in place is seen within ``FOLDER_RECHECK_SECONDS``. The DAG processor and task
    processes load one city per process and always look afresh.
    """
    key = str(directory)
    try:
        names = frozenset(os.listdir(directory))
    except OSError:
        return {}
    now = time.monotonic()
    cached_folder = _FOLDER_CACHE.get(key)
    if cached_folder is not None and cached_folder[0] == names and now - cached_folder[1] < FOLDER_RECHECK_SECONDS:
        return cached_folder[2]
    files: dict[str, _CityFile] = {}
    for name in names:
        if not name.endswith(".yaml") or name.startswith("_"):
            continue
        path = os.path.join(directory, name)
        try:
            stat = os.stat(path)
            stamp = (stat.st_mtime_ns, stat.st_size)
            cached = _TEXT_CACHE.get(path)
            if cached is None or cached.stamp != stamp:
                with open(path, "rb") as handle:
                    cached = _CityFile(path, stamp, handle.read())
                _TEXT_CACHE[path] = cached
        except OSError:
            continue
        files[name[: -len(".yaml")]] = cached
    _FOLDER_CACHE[key] = (names, now, files)
    return files


def _explicit_model_name(file: _CityFile) -> str | None:
    """``registry.model_name`` as the file itself sets it, or None (not set, not valid, or the file is broken)."""
    cached = _NAME_CACHE.get(file.path)
    if cached is not None and cached[0] == file.stamp:
        return cached[1]
    try:
        registry = read_yaml(Path(file.path)).get("registry")
    except ConfigError:  # that city's own parse reports it
        registry = None
    name = registry.get("model_name") if isinstance(registry, dict) else None
    name = name if isinstance(name, str) and re.fullmatch(MODEL_NAME_PATTERN, name) else None
    _NAME_CACHE[file.path] = (file.stamp, name)
    return name


def model_name_problems(config: CityConfig, directory: Path, defaults: dict[str, Any]) -> list[str]:
    """A city may not register into another city's model: resolved names are unique across the folder.

    A name belongs to the city that the default ``registry.model_name`` gives it to: a file that takes another
    city's name is refused and the owner keeps building. Two files that set the same other name are both refused.
    Cheap enough for every DAG-file parse: a city on a default name with ``{city}`` (the usual case) looks at no
    other file; otherwise the other files are read as bytes (once per process while unchanged), and only one that
    could resolve to this name is parsed as YAML (once per process while unchanged).
    """
    filename = f"{config.city}.yaml"
    name = config.model_name
    default_name = _default_model_name(defaults)
    mine = name == default_name.replace("{city}", config.city)
    if mine and "{city}" in default_name:
        # The default gives each city a name no other city's default gives, and a city on its own default name owns
        # it: another file that takes the name is refused in that file's own parse.
        return []
    problems: list[tuple[str, str]] = []
    encoded = name.encode()
    for other, file in _city_files(directory).items():
        theirs = default_name.replace("{city}", other) == name
        if other == config.city or (mine and not theirs):
            continue  # with its own default name this city can only clash with the name's owner
        explicit = None
        # A name with {city} resolves to a string holding the city's name: only a file that spells this name, or
        # whose city's name is part of it, can resolve to it.
        if b"model_name" in file.text and (
            theirs or encoded in file.text or (b"{city}" in file.text and other in name)
        ):
            explicit = _explicit_model_name(file)
        if (explicit or default_name).replace("{city}", other) != name:
            continue
        if mine:  # both names come from a default without {city}
            problem = (
                f"{filename}: registry.model_name: {name!r} (from {DEFAULTS_FILE}) is also the model of {other}.yaml; "
                f"put {{city}} in the registry.model_name of {DEFAULTS_FILE}"
            )
        elif theirs:
            problem = (
                f"{filename}: registry.model_name: {name!r} is the model of {other}.yaml (its name by "
                f"{DEFAULTS_FILE}); a city may only register its own model: choose another name"
            )
        else:
            problem = (
                f"{filename}: registry.model_name: {name!r} is also set by {other}.yaml; every city needs its own "
                "model: rename one of them"
            )
        problems.append((other, problem))
    return [problem for _, problem in sorted(problems)]


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
