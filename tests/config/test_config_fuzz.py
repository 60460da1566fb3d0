"""Property-based fuzzing of city configs: whatever a city file holds, parsing and `airflow-ml lint` report it as
ConfigError lines (or accept it), never crash with another exception, and never take another city down.

Each example writes one mutated city (``fuzz.yaml``) next to two good ones (``alpha``, ``bravo``) and the shipped
``_defaults.yaml``; the good cities must still load and build their DAGs, in the DAG-file parse and in lint.
Mutations of a valid config: wrong types, unknown keys, deleted keys, odd unicode, huge numbers, Jinja templates,
nested junk, model names of other cities, and raw text/byte damage. Derandomized (fixed seed, no example database)
so CI sees the same 1,000 examples every run.
"""

from __future__ import annotations

import copy
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from airflow_ml_provider.config import CityConfig, ConfigError, load_city_config
from airflow_ml_provider.factory import build_retrain_dag, build_rollback_dag
from airflow_ml_provider.tools.lint import lint_directory

pytestmark = pytest.mark.slow  # about a minute: 1,000 folders parsed and linted

CONFIGS = Path(__file__).resolve().parents[2] / "dags" / "configs"
GOOD = ("alpha", "bravo")
EXAMPLES = 1000

ODD_STRINGS = [
    "{{ conn.aws_default.password }}",
    "{{ var.value.secret }}",
    "{% for x in range(10**9) %}x{% endfor %}",
    "{{ ds }}",
    "{{ dag_run.conf['data_uri'] }}",
    "{city}",
    "{0}",
    "{city!r}",
    "{}",
    "eta_alpha",
    "eta_{city}",
    "alpha",
    "\u202egnp.atad",  # right-to-left override
    "a\u200bb",  # zero-width space
    "\x00",
    "x" * 10_000,
    "nan",
    "None",
    "",
    "$\\notacommand$",
    "@daily",
    "@once",
    "* * * * *",
    "61 25 * * *",
    "sklearn.ensemble.RandomForestRegressor",
    "os.system",
    "expect_column_to_exist",
    "s3://",
    "../../etc/passwd",
    "1e309",
]

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec="utf-8"), max_size=30)
    | st.sampled_from(ODD_STRINGS)
)
KEYS = st.text(st.characters(codec="utf-8"), max_size=12) | st.integers(-5, 5) | st.booleans() | st.none()
JUNK = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=10,
)


def _base() -> dict[str, Any]:
    """A valid, fully spelled-out city file: every field present, so mutations reach every field."""
    config = load_city_config("berlin", CONFIGS).resolved()
    config["city"] = "fuzz"
    del config["model"]["allowed_estimator_prefixes"]  # only _defaults.yaml may set it
    return config


BASE = _base()


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            yield from _paths(child, (*path, i))


def _parent(config: Any, path: tuple) -> Any:
    for part in path[:-1]:
        config = config[part]
    return config


@st.composite
def mutated_config(draw: st.DrawFn) -> dict[str, Any]:
    config = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(config))))
        op = draw(st.sampled_from(["replace", "replace", "delete", "add_key", "odd_string"]))
        if not path:
            if op == "add_key":
                config[draw(KEYS)] = draw(JUNK)
            continue
        parent = _parent(config, path)
        if op == "delete":
            del parent[path[-1]]
        elif op == "add_key":
            target = parent[path[-1]]
            if isinstance(target, dict):
                target[draw(KEYS)] = draw(JUNK)
            else:
                parent[path[-1]] = {draw(KEYS): draw(JUNK)}
        elif op == "odd_string":
            parent[path[-1]] = draw(st.sampled_from(ODD_STRINGS))
        else:
            parent[path[-1]] = draw(JUNK)
    return config


@st.composite
def city_file(draw: st.DrawFn) -> bytes:
    """The bytes of fuzz.yaml: mostly a mutated config, sometimes damaged text or bytes."""
    config = draw(mutated_config())
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    text = yaml.dump(config, Dumper=dumper, sort_keys=False, allow_unicode=True).encode()
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "insert_text", "insert_bytes"]))
    if damage == "none":
        return text
    at = draw(st.integers(0, len(text)))
    if damage == "truncate":
        return text[:at]
    if damage == "insert_text":
        return text[:at] + draw(st.text(st.characters(codec="utf-8"), max_size=20)).encode() + text[at:]
    return text[:at] + draw(st.binary(max_size=8)) + text[at:]


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz") / "configs"
    folder.mkdir()
    shutil.copy(CONFIGS / "_defaults.yaml", folder)
    for city in GOOD:
        (folder / f"{city}.yaml").write_text(f"city: {city}\napproval: {{approvers: [{city}_ops]}}\n")
    return folder


def _parse(city: str, folder: Path) -> CityConfig | None:
    """What the DAG processor does with the city's loader file: load the config, build both DAGs."""
    try:
        config = load_city_config(city, folder)
        build_retrain_dag(config)
        build_rollback_dag(config)
    except ConfigError as exc:
        assert exc.problems and all(p.startswith(f"{city}.yaml: ") for p in exc.problems), exc.problems
        return None
    return config


def test_fuzzed_city_configs_fail_only_as_config_errors_and_alone(folder: Path) -> None:
    # The good cities' DAGs are built once here; in each example their config must load unchanged, so they build the
    # same DAGs (building them 1,000 times more would prove nothing new and triple the run time).
    good = {city: _parse(city, folder) for city in GOOD}
    assert all(good.values())
    seen = {"examples": 0, "accepted": 0}
    started, cpu_started = time.monotonic(), time.process_time()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    @given(content=city_file())
    def check(content: bytes) -> None:
        (folder / "fuzz.yaml").write_bytes(content)
        seen["examples"] += 1
        fuzz = _parse("fuzz", folder)
        seen["accepted"] += fuzz is not None
        for city, config in good.items():
            assert load_city_config(city, folder) == config, f"{city} changed with fuzz.yaml:\n{content[:2000]!r}"
        problems, ok = lint_directory(folder)
        assert set(GOOD) <= set(ok), problems
        assert all(p.startswith("fuzz.yaml: ") for p in problems), problems
        if fuzz is None:
            assert problems and "fuzz" not in ok

    check()
    elapsed, cpu = time.monotonic() - started, time.process_time() - cpu_started
    print(f"fuzzed {seen['examples']} city configs in {elapsed:.1f} s ({cpu:.1f} s CPU); {seen['accepted']} accepted")
    assert seen["examples"] >= EXAMPLES
