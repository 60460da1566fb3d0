"""Where a run keeps its files (``<storage.base_uri>/<city>/<dag run id>/<name>``, local folder or s3:// prefix), and
the check that a file is still the one its step wrote."""

from __future__ import annotations

import hashlib
import re


def run_uri(base_uri: str, city: str, run_id: str, name: str) -> str:
    """The URI of a run-scoped file; the run id is made path-safe (Airflow run ids contain ':' and '+')."""
    safe_run_id = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return f"{base_uri.rstrip('/')}/{city}/{safe_run_id}/{name}"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class IntegrityError(ValueError):
    """A run's file whose bytes are not those the step that wrote it recorded: a retry reads the same bytes."""


def verified(data: bytes, expected_sha256: str, uri: str, *, written_by: str) -> bytes:
    """``data``, only if its sha256 is the one ``written_by`` (the step that wrote the file) recorded."""
    actual = sha256_hex(data)
    if actual != expected_sha256:
        raise IntegrityError(
            f"{uri}: sha256 is {actual} but {written_by} recorded {expected_sha256}: the file changed after "
            f"{written_by} wrote it, and a retry reads the same bytes. Find what changed the run's files, then clear "
            f"{written_by} and its downstream tasks in this DAG run to write it again."
        )
    return data
