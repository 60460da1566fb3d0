"""``airflow-ml lint``: every problem in a config folder at once, each naming its file and field."""

from __future__ import annotations

from pathlib import Path

from airflow_ml_provider.config import CityConfig, ConfigError, city_names, load_all

LOADER_TEMPLATE = '''"""Airflow DAGs retrain_{city} and rollback_{city}, built from configs/{city}.yaml."""

from airflow_ml_provider.factory import city_dags

globals().update(city_dags(__file__))
'''


def lint_directory(directory: Path) -> tuple[list[str], list[str]]:
    """Problems in the folder (schema, expectations checked against Great Expectations, loader files) and the
    names of the cities that are fine. Warnings (``metric_warnings``) are not problems."""
    if not directory.is_dir():
        return [f"{directory}: no such folder"], []
    configs, problems = load_all(directory)
    if configs:
        from airflow_ml_provider.core.validation import expectation_problems  # imports Great Expectations

        for city, config in configs.items():
            problems.extend(expectation_problems(config, f"{city}.yaml"))
        problems.extend(dag_problems(configs))
    problems.extend(loader_problems(directory))
    problems.extend(fleet_problems(directory))
    bad = {p.split(".yaml", 1)[0] for p in problems}
    return problems, [c for c in configs if c not in bad]


def metric_warnings(configs: dict[str, CityConfig]) -> list[str]:
    """Guardrails on metrics that some targets leave undefined: not errors (the data decides), but worth knowing."""
    from airflow_ml_provider.core.metrics import FRAGILE_METRICS

    return [
        f"{city}.yaml: evaluation.guardrails[{i}]: warning: {g.metric} is fragile: {FRAGILE_METRICS[g.metric]}"
        for city, config in configs.items()
        for i, g in enumerate(config.evaluation.guardrails)
        if g.metric in FRAGILE_METRICS
    ]


def dag_problems(configs: dict[str, CityConfig]) -> list[str]:
    """What the DAG processor would report as an import error of a city's file: its DAGs built by the factory."""
    from airflow_ml_provider.factory import build_retrain_dag, build_rollback_dag  # imports Airflow

    problems = []
    for city, config in configs.items():
        try:
            build_retrain_dag(config)
            build_rollback_dag(config)
        except ConfigError as exc:
            problems.extend(exc.problems)
        except Exception as exc:  # anything Airflow itself refuses: shown as this city's import error
            problems.append(f"{city}.yaml: Airflow refuses the DAG built from it: {type(exc).__name__}: {exc}")
    return problems


def loader_problems(directory: Path) -> list[str]:
    """In a DAG folder (configs/ next to loader files), every city needs its ``<city>.py`` loader and vice versa."""
    dags_folder = directory.parent
    loaders = {p.stem for p in dags_folder.glob("*.py") if "city_dags(" in p.read_text()}
    if not loaders:
        return []  # a config folder outside a DAG folder: nothing to pair
    cities = set(city_names(directory))
    problems = [
        f"{city}.yaml: no loader {dags_folder / (city + '.py')}; create it with:\n{LOADER_TEMPLATE.format(city=city)}"
        for city in sorted(cities - loaders)
    ]
    problems += [
        f"{dags_folder / (name + '.py')}: no config {name}.yaml in {directory}" for name in sorted(loaders - cities)
    ]
    return problems


def fleet_problems(directory: Path) -> list[str]:
    """``_fleet.yaml`` (the approval digest), as the DAG processor would build it."""
    from airflow_ml_provider.config.fleet import load_fleet_config

    try:
        digest = load_fleet_config(directory).approval_digest
        if digest is not None:
            from airflow_ml_provider.factory import build_digest_dag  # imports Airflow

            build_digest_dag(digest, directory)
    except ConfigError as exc:
        return exc.problems
    return []
