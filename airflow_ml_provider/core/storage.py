"""Where a run keeps its files: ``<storage.base_uri>/<city>/<dag run id>/<name>``, local folder or s3:// prefix."""

from __future__ import annotations

import hashlib
import re


def run_uri(base_uri: str, city: str, run_id: str, name: str) -> str:
    """The URI of a run-scoped file; the run id is made path-safe (Airflow run ids contain ':' and '+')."""
    safe_run_id = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return f"{base_uri.rstrip('/')}/{city}/{safe_run_id}/{name}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
