"""The bad-config corpus: one broken city file each, and the exact ``file: field: message`` a person reads.

Every entry is a city file written next to the shipped ``_defaults.yaml`` and cities; loading it must raise
ConfigError with exactly these lines, and ``airflow-ml lint`` must report the same lines for that file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airflow_ml_provider.config import ConfigError, load_city_config
from airflow_ml_provider.tools.lint import lint_directory

CONFIGS = Path(__file__).resolve().parents[2] / "dags" / "configs"

MACROS = (
    "data.uri may only use {{ ds }}, {{ ds_nodash }}, {{ data_interval_start }}, {{ data_interval_end }}, "
    "{{ logical_date }} (the last three optionally with | ds or | ds_nodash) and {{ dag_run.conf['data_uri'] }}"
)
MODEL_NAME = (
    "is not a model name: use up to 200 letters, digits, `_`, `-` and `.`, with `{city}` for the city's name "
    "(e.g. eta_{city})"
)

# (id, berlin.yaml, the exact problems)
CORPUS: list[tuple[str, str, list[str]]] = [
    # ----- data.uri: only the documented macros -----
    (
        "uri-connection-password",
        "city: berlin\ndata: {uri: 's3://rides/{{ conn.aws_default.password }}/x.parquet'}\n",
        [f"berlin.yaml: data.uri: the template {{{{ conn.aws_default.password }}}} is not allowed; {MACROS}"],
    ),
    (
        "uri-variable",
        "city: berlin\ndata: {uri: 's3://rides/{{ var.value.secret }}.parquet'}\n",
        [f"berlin.yaml: data.uri: the template {{{{ var.value.secret }}}} is not allowed; {MACROS}"],
    ),
    (
        "uri-macros-module",
        'city: berlin\ndata: {uri: "/data/{{ macros.datetime.now() }}.parquet"}\n',
        [f"berlin.yaml: data.uri: the template {{{{ macros.datetime.now() }}}} is not allowed; {MACROS}"],
    ),
    (
        "uri-xcom",
        "city: berlin\ndata: {uri: \"/data/{{ ti.xcom_pull(task_ids='x') }}\"}\n",
        [f"berlin.yaml: data.uri: the template {{{{ ti.xcom_pull(task_ids='x') }}}} is not allowed; {MACROS}"],
    ),
    (
        "uri-statement-block",
        'city: berlin\ndata: {uri: "/data/{% for x in range(9) %}x{% endfor %}.parquet"}\n',
        [f"berlin.yaml: data.uri: '{{%' outside a {{{{ macro }}}}; {MACROS}"],
    ),
    (
        "uri-other-conf-key",
        "city: berlin\ndata: {uri: \"{{ dag_run.conf['path'] }}\"}\n",
        [f"berlin.yaml: data.uri: the template {{{{ dag_run.conf['path'] }}}} is not allowed; {MACROS}"],
    ),
    (
        "uri-unclosed-template",
        'city: berlin\ndata: {uri: "/data/{{ ds .parquet"}\n',
        [f"berlin.yaml: data.uri: '{{{{' outside a {{{{ macro }}}}; {MACROS}"],
    ),
    (
        "uri-not-a-string",
        "city: berlin\ndata: {uri: [a, b]}\n",
        ["berlin.yaml: data.uri: input should be a valid string, got ['a', 'b']"],
    ),
    # ----- registry.model_name: a pattern, and one model per city -----
    (
        "model-name-quote",
        "city: berlin\nregistry: {model_name: \"eta_{city}' or name != '\"}\n",
        [f"berlin.yaml: registry.model_name: \"eta_{{city}}' or name != '\" {MODEL_NAME}"],
    ),
    (
        "model-name-space",
        "city: berlin\nregistry: {model_name: eta berlin}\n",
        [f"berlin.yaml: registry.model_name: 'eta berlin' {MODEL_NAME}"],
    ),
    (
        "model-name-other-placeholder",
        'city: berlin\nregistry: {model_name: "eta_{team}"}\n',
        [f"berlin.yaml: registry.model_name: 'eta_{{team}}' {MODEL_NAME}"],
    ),
    (
        "model-name-slash",
        'city: berlin\nregistry: {model_name: "ml/eta_{city}"}\n',
        [f"berlin.yaml: registry.model_name: 'ml/eta_{{city}}' {MODEL_NAME}"],
    ),
    (
        "model-name-empty",
        "city: berlin\nregistry: {model_name: ''}\n",
        [f"berlin.yaml: registry.model_name: '' {MODEL_NAME}"],
    ),
    (
        "model-name-too-long",
        "city: berlin\nregistry: {model_name: " + "m" * 201 + "}\n",
        [f"berlin.yaml: registry.model_name: '{'m' * 79}…' {MODEL_NAME}"],
    ),
    (
        "model-name-cyrillic",
        'city: berlin\nregistry: {model_name: "eta_берлин"}\n',
        [f"berlin.yaml: registry.model_name: 'eta_берлин' {MODEL_NAME}"],
    ),
    (
        "model-name-of-another-city",
        "city: berlin\nregistry: {model_name: eta_lisbon}\n",
        [
            "berlin.yaml: registry.model_name: 'eta_lisbon' is the model of lisbon.yaml (its name by _defaults.yaml); "
            "a city may only register its own model: choose another name"
        ],
    ),
    (
        "model-name-null",
        "city: berlin\nregistry: {model_name: null}\n",
        ["berlin.yaml: registry.model_name: input should be a valid string, got None"],
    ),
    # ----- types, ranges and numbers -----
    (
        "retries-huge",
        "city: berlin\nretries: 100000000000000000000\n",
        ["berlin.yaml: retries: must be <= 10, got 100000000000000000000"],
    ),
    (
        "retries-word",
        "city: berlin\nretries: many\n",
        ["berlin.yaml: retries: input should be a valid integer, unable to parse string as an integer, got 'many'"],
    ),
    (
        "train-window-zero",
        "city: berlin\ndata: {train_window_days: 0}\n",
        ["berlin.yaml: data.train_window_days: must be >= 1, got 0"],
    ),
    (
        "eval-window-fraction",
        "city: berlin\ndata: {eval_window_days: 1.5}\n",
        [
            "berlin.yaml: data.eval_window_days: input should be a valid integer, got a number with a fractional "
            "part, got 1.5"
        ],
    ),
    (
        "timestamp-column-null",
        "city: berlin\ndata: {timestamp_column: null}\n",
        ["berlin.yaml: data.timestamp_column: input should be a valid string, got None"],
    ),
    (
        "format-json",
        "city: berlin\ndata: {format: json}\n",
        ["berlin.yaml: data.format: input should be 'parquet' or 'csv', got 'json'"],
    ),
    (
        "duplicate-fraction-above-one",
        "city: berlin\nvalidation: {max_duplicate_fraction: 1.5}\n",
        ["berlin.yaml: validation.max_duplicate_fraction: must be <= 1, got 1.5"],
    ),
    (
        "confidence-too-low",
        "city: berlin\nevaluation: {primary_metric: mae, confidence: 0.3}\n",
        ["berlin.yaml: evaluation.confidence: must be > 0.5, got 0.3"],
    ),
    (
        "timeout-negative",
        "city: berlin\napproval: {approvers: [a], timeout_hours: -1}\n",
        ["berlin.yaml: approval.timeout_hours: must be > 0, got -1"],
    ),
    (
        "spread-sixty",
        "city: berlin\nresources: {start_spread_minutes: 60}\n",
        ["berlin.yaml: resources.start_spread_minutes: must be <= 59, got 60"],
    ),
    (
        "pool-slots-zero",
        "city: berlin\nresources: {pool_slots: 0}\n",
        ["berlin.yaml: resources.pool_slots: must be >= 1, got 0"],
    ),
    (
        "schema-version-string",
        "city: berlin\nschema_version: '1'\n",
        ["berlin.yaml: schema_version: input should be 1, got '1'"],
    ),
    (
        "owner-mapping",
        "city: berlin\nowner: {team: x}\n",
        ["berlin.yaml: owner: input should be a valid string"],
    ),
    (
        "approvers-string",
        "city: berlin\napproval: {approvers: ops_lead}\n",
        ["berlin.yaml: approval.approvers: input should be a valid list, got 'ops_lead'"],
    ),
    (
        "params-list",
        "city: berlin\nmodel: {params: [1, 2]}\n",
        ["berlin.yaml: model.params: input should be a valid dictionary, got [1, 2]"],
    ),
    # ----- shapes and cross-field rules -----
    (
        "model-not-a-mapping",
        "city: berlin\nmodel: 5\n",
        ["berlin.yaml: model: input should be a valid dictionary or instance of ModelConfig, got 5"],
    ),
    (
        "features-empty",
        "city: berlin\nfeatures: {numeric: [], categorical: []}\n",
        ["berlin.yaml: features: declare at least one numeric or categorical feature"],
    ),
    (
        "features-both-kinds",
        "city: berlin\nfeatures: {numeric: [district], categorical: [district]}\n",
        ["berlin.yaml: features: columns listed as both numeric and categorical: ['district']"],
    ),
    (
        "feature-is-timestamp",
        "city: berlin\nfeatures: {numeric: [requested_at]}\n",
        ["berlin.yaml: features: the timestamp column 'requested_at' cannot be a feature"],
    ),
    (
        "estimator-os-system",
        "city: berlin\nmodel: {estimator: os.system}\n",
        [
            "berlin.yaml: model: estimator 'os.system' is not allowed; estimators must start with one of "
            "['sklearn.'] (platform teams extend model.allowed_estimator_prefixes in _defaults.yaml)"
        ],
    ),
    (
        "expectation-camel-case",
        "city: berlin\nvalidation: {expectations: [{ExpectColumnToExist: {column: a}}]}\n",
        [
            "berlin.yaml: validation.expectations[0]: each expectation is one `expect_<name>: {arguments}` entry "
            "with an optional `severity`, got keys ['ExpectColumnToExist']"
        ],
    ),
    (
        "expectation-integer-key",
        "city: berlin\nvalidation: {expectations: [{1: 2}]}\n",
        [
            "berlin.yaml: validation.expectations[0]: each expectation is one `expect_<name>: {arguments}` entry "
            "with an optional `severity`, got keys ['1']"
        ],
    ),
    (
        "expectation-arguments-list",
        "city: berlin\nvalidation: {expectations: [{expect_column_to_exist: [a]}]}\n",
        ["berlin.yaml: validation.expectations[0]: arguments of expect_column_to_exist must be a mapping, got ['a']"],
    ),
    (
        "slice-two-kinds",
        "city: berlin\nevaluation: {primary_metric: mae, slices: [{column: district, columns: [a, b]}]}\n",
        [
            "berlin.yaml: evaluation.slices[0]: a slice has exactly one of column, columns, bins, where; "
            "got ['column', 'columns']"
        ],
    ),
    (
        "guardrail-without-rule",
        "city: berlin\nevaluation: {primary_metric: mae, guardrails: [{metric: mae}]}\n",
        [
            "berlin.yaml: evaluation.guardrails[0]: a guardrail needs at least one of max_relative_regression, "
            "max_absolute_regression, min_value, max_value"
        ],
    ),
    (
        "guardrail-classification-metric",
        "city: berlin\nevaluation: {primary_metric: mae, guardrails: [{metric: roc_auc, max_value: 1}]}\n",
        [
            "berlin.yaml: evaluation.guardrails[0].metric: 'roc_auc' is not a regression metric; "
            "use one of ['mae', 'rmse', 'mape', 'r2']"
        ],
    ),
    (
        "baseline-majority-for-regression",
        "city: berlin\nevaluation: {primary_metric: mae, baseline: {strategy: majority}}\n",
        ["berlin.yaml: evaluation.baseline.strategy: `majority` is for classification; use mean or median"],
    ),
    (
        "notifier-kind",
        "city: berlin\napproval: {approvers: [a], notifiers: [{kind: pager}]}\n",
        ["berlin.yaml: approval.notifiers[0].kind: input should be 'smtp' or 'slack', got 'pager'"],
    ),
    (
        "smtp-notifier-without-to",  # SmtpNotifier would send to nobody, without an error
        "city: berlin\napproval: {approvers: [a], notifiers: [{kind: slack}, {kind: smtp, to: []}]}\n",
        ["berlin.yaml: approval.notifiers[1]: kind smtp needs `to`: the addresses, e.g. ['ml-team@example.com']"],
    ),
    # ----- retrain_on.assets: what Airflow would refuse, or never match, in an error naming no field -----
    (
        "asset-empty",
        "city: berlin\nretrain_on: {assets: ['rides_{city}', ' ']}\n",
        [
            "berlin.yaml: retrain_on.assets[1]: empty; give the URI or name the upstream task declares in `outlets`, "
            "or remove the entry"
        ],
    ),
    (
        "asset-template",
        "city: berlin\nretrain_on: {assets: ['s3://lake/{{ ds }}/rides.parquet']}\n",
        [
            "berlin.yaml: retrain_on.assets[0]: 's3://lake/{{ ds }}/rides.parquet' has an Airflow template, which "
            "Airflow does not render in assets; use the fixed URI or name the upstream task declares in `outlets` "
            "(`{city}` is replaced)"
        ],
    ),
    (
        "unknown-nested-key",
        'city: berlin\nregistry: {model_name: "eta_{city}", extra: {a: [1, {b: 2}]}}\n',
        ["berlin.yaml: registry.extra: unknown key; check the spelling against docs/config-reference.md"],
    ),
    (
        "city-of-another-file",
        "city: paris\n",
        ["berlin.yaml: city: must equal the file name 'berlin', got 'paris'"],
    ),
    # ----- the file itself -----
    ("top-level-list", "- city: berlin\n", ["berlin.yaml: expected a mapping of settings at the top level, got list"]),
    (
        "tab-indent",
        "city: berlin\n\tschedule: x\n",
        ["berlin.yaml: not valid YAML (line 2, column 1): found a tab character that violates indentation"],
    ),
    (
        "python-object-tag",
        "city: berlin\nowner: !!python/object/apply:os.system [id]\n",
        [
            "berlin.yaml: not valid YAML (line 2, column 8): could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object/apply:os.system'"
        ],
    ),
]
# Bytes that are not text at all.
BINARY = b"city: berlin\nowner: \xff\xfe\n"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    folder = tmp_path / "configs"
    shutil.copytree(CONFIGS, folder)
    return folder


def test_the_corpus_is_large_and_ids_are_unique() -> None:
    assert len(CORPUS) >= 30
    assert len({entry[0] for entry in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_bad_config_says_file_field_and_what_to_do(folder: Path, text: str, expected: list[str]) -> None:
    (folder / "berlin.yaml").write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_city_config("berlin", folder)
    assert caught.value.problems == expected


def test_a_file_that_is_not_utf8(folder: Path) -> None:
    (folder / "berlin.yaml").write_bytes(BINARY)
    with pytest.raises(ConfigError) as caught:
        load_city_config("berlin", folder)
    assert caught.value.problems == ["berlin.yaml: not UTF-8 text (byte 20); save the file as UTF-8"]


def test_lint_reports_the_same_lines_and_keeps_the_good_cities(folder: Path) -> None:
    """One folder with every corpus entry as its own city: lint reports each entry's lines, the shipped cities pass."""
    expected = []
    for i, (_, text, problems) in enumerate(CORPUS):
        city = f"bad{i:02d}"
        (folder / f"{city}.yaml").write_text(text.replace("city: berlin", f"city: {city}"))
        expected += [p.replace("berlin.yaml", f"{city}.yaml").replace("'berlin'", f"'{city}'") for p in problems]
    problems, ok = lint_directory(folder)
    assert sorted(problems) == sorted(expected)
    assert ok == ["berlin", "lisbon", "warsaw"]


# ----- one model per city: parse and lint both name the two files -----


def _loader(folder: Path, city: str) -> str:
    """A city's loader file next to its configs, as in dags/."""
    path = folder.parent / f"{city}.py"
    path.write_text("from airflow_ml_provider.factory import city_dags\n\nglobals().update(city_dags(__file__))\n")
    return str(path)


def test_a_city_taking_another_citys_model_fails_alone(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_ml_provider.factory import city_dags

    monkeypatch.delenv("AIRFLOW_ML_CONFIG_DIR", raising=False)  # the loader's own configs/ folder
    (folder / "paris.yaml").write_text("city: paris\nregistry: {model_name: eta_berlin}\napproval: {approvers: [x]}\n")
    message = (
        "paris.yaml: registry.model_name: 'eta_berlin' is the model of berlin.yaml (its name by _defaults.yaml); "
        "a city may only register its own model: choose another name"
    )
    with pytest.raises(ConfigError) as caught:  # the DAG processor shows this as paris.py's import error
        city_dags(_loader(folder, "paris"))
    assert caught.value.problems == [message]
    assert set(city_dags(_loader(folder, "berlin"))) == {"retrain_berlin", "rollback_berlin"}
    for city in ("lisbon", "warsaw"):
        _loader(folder, city)
    problems, ok = lint_directory(folder)
    assert problems == [message]
    assert ok == ["berlin", "lisbon", "warsaw"]


def test_two_cities_setting_one_name_both_fail(folder: Path) -> None:
    for city in ("paris", "rome"):
        (folder / f"{city}.yaml").write_text(f"city: {city}\nregistry: {{model_name: eta_south}}\n")
    problems, ok = lint_directory(folder)
    assert problems == [
        f"{city}.yaml: registry.model_name: 'eta_south' is also set by {other}.yaml; every city needs its own model: "
        "rename one of them"
        for city, other in (("paris", "rome"), ("rome", "paris"))
    ]
    assert ok == ["berlin", "lisbon", "warsaw"]


def test_a_default_name_without_city_collides_everywhere(folder: Path) -> None:
    defaults = folder / "_defaults.yaml"
    defaults.write_text(defaults.read_text().replace('model_name: "eta_{city}"', "model_name: eta"))
    with pytest.raises(ConfigError) as caught:
        load_city_config("lisbon", folder)
    assert caught.value.problems == [
        f"lisbon.yaml: registry.model_name: 'eta' (from _defaults.yaml) is also the model of {other}.yaml; "
        "put {city} in the registry.model_name of _defaults.yaml"
        for other in ("berlin", "warsaw")
    ]


@pytest.mark.parametrize(
    "uri",
    [
        "s3://rides/{city}/{{ ds }}/rides.parquet",
        "s3://rides/{{ds_nodash}}.csv",
        "/data/{{ data_interval_start | ds }}_{{ data_interval_end|ds_nodash }}.parquet",
        "/data/{{ logical_date }}.parquet",
        '{{ dag_run.conf["data_uri"] }}',
    ],
)
def test_documented_macros_are_allowed(folder: Path, uri: str) -> None:
    (folder / "berlin.yaml").write_text(f"city: berlin\ndata: {{uri: '{uri}'}}\n")
    assert load_city_config("berlin", folder).data.uri == uri
