"""Airflow templates in a city's YAML: the few ``data.uri`` may use, and their absence where Airflow renders none.

Imported while Airflow parses DAG files: standard library only.
"""

from __future__ import annotations

import re


def shorten(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis, so a huge value cannot flood an error message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# The only Airflow templates data.uri may use: dates of the run, and the file a person names when triggering.
# Anything else (conn, var, macros, ti, ...) could put secrets into XCom and the MLflow tag airflow_ml.data_uri.
# `dag_run.conf['data_uri']` is allowed because whoever may trigger the DAG may already choose its run's inputs; its
# value is a plain string, rendered once (a template inside it is not rendered again), read with data.aws_conn_id,
# and trains only this city's model, which still needs approval.
_DATE_MACROS = ("data_interval_start", "data_interval_end", "logical_date")
DATA_URI_MACROS = (
    "ds",
    "ds_nodash",
    *_DATE_MACROS,
    *(f"{macro} | {date_filter}" for macro in _DATE_MACROS for date_filter in ("ds", "ds_nodash")),
    "dag_run.conf['data_uri']",
)
_ALLOWED_TEMPLATES = {re.sub(r"\s+", "", m) for m in DATA_URI_MACROS}
_TEMPLATE = re.compile(r"\{\{(.*?)\}\}", re.S)
_ALLOWED_MACROS_TEXT = (
    "data.uri may only use {{ ds }}, {{ ds_nodash }}, {{ data_interval_start }}, {{ data_interval_end }}, "
    "{{ logical_date }} (the last three optionally with | ds or | ds_nodash) and {{ dag_run.conf['data_uri'] }}"
)


def data_uri_problem(uri: str) -> str | None:
    """Why ``uri`` may not be rendered by Airflow, or None: only ``{{ macro }}`` from DATA_URI_MACROS is allowed."""
    for match in _TEMPLATE.finditer(uri):
        if re.sub(r"\s+", "", match.group(1)).replace('"', "'") not in _ALLOWED_TEMPLATES:
            return f"the template {shorten(match.group(0))} is not allowed; {_ALLOWED_MACROS_TEXT}"
    rest = _TEMPLATE.sub("", uri)
    for marker in ("{{", "}}", "{%", "%}", "{#", "#}"):
        if marker in rest:
            return f"{marker!r} outside a {{{{ macro }}}}; {_ALLOWED_MACROS_TEXT}"
    return None


def has_template(text: str) -> bool:
    """Whether ``text`` holds Jinja markup; Airflow renders it only in templated task fields, never in assets."""
    return any(marker in text for marker in ("{{", "{%", "{#"))
