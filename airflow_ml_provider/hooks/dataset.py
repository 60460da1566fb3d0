"""DatasetHook: the one way the package reads and writes data files, on local disk or in S3.

Operators import this module while Airflow parses DAG files, so pandas, pyarrow and the amazon provider are imported
inside the methods that need them.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseHook

from airflow_ml_provider.core.storage import verified

if TYPE_CHECKING:
    import pandas as pd
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    from airflow_ml_provider.core.handoff import Trained, Validated

FORMATS = ("parquet", "csv")


class DatasetError(ValueError):
    """A data file that cannot be read or written; the message names the URI and what to do about it.

    Missing files and S3 errors may pass (an export still landing, a network blip), so tasks retry them.
    """


class UnusableFileError(DatasetError):
    """The file is there but is not usable data (empty, corrupt, wrong format or delimiter): a retry reads the same
    bytes and fails the same way."""


def _is_s3(uri: str) -> bool:
    return uri.startswith("s3://")


def _split_s3(uri: str) -> tuple[str, str]:
    bucket, _, key = uri[len("s3://") :].partition("/")
    if not bucket:
        raise DatasetError(f"{uri}: no bucket name; S3 URIs look like s3://bucket/path/file.parquet")
    return bucket, key


def _format_of(uri: str, explicit: str | None) -> str:
    if explicit is not None:
        if explicit not in FORMATS:
            raise UnusableFileError(f"{uri}: unknown format {explicit!r}; use one of {list(FORMATS)}")
        return explicit
    name = uri.lower()
    for fmt in FORMATS:
        if name.endswith(f".{fmt}"):
            return fmt
    raise UnusableFileError(
        f"{uri}: cannot tell the file format from the name (expected a .parquet or .csv suffix); "
        "rename the file or set data.format to parquet or csv"
    )


def _prefix_format(uri: str, names: list[str], explicit: str | None) -> str:
    if explicit is not None:
        return _format_of(uri, explicit)
    found = {fmt for fmt in FORMATS for name in names if name.lower().endswith(f".{fmt}")}
    if not found:
        raise DatasetError(
            f"{uri}: no .parquet or .csv files under this prefix ({len(names)} other files); "
            "check data.uri and that the upstream export ran"
        )
    if len(found) > 1:
        raise UnusableFileError(f"{uri}: holds both .parquet and .csv files; set data.format to say which to read")
    return found.pop()


def _parse(data: bytes, fmt: str, uri: str) -> pd.DataFrame:
    """Bytes to a frame, with errors that say what is wrong with the file instead of a parser stack trace."""
    import pandas as pd

    if not data:
        raise UnusableFileError(f"{uri}: is empty (0 bytes); the upstream export probably failed, re-run it")
    if fmt == "parquet":
        import pyarrow as pa

        try:
            return pd.read_parquet(io.BytesIO(data))
        except (pa.ArrowException, OSError) as exc:
            hint = " (it looks like CSV text: set data.format to csv)" if data[:4] != b"PAR1" and _is_text(data) else ""
            raise UnusableFileError(
                f"{uri}: not a valid Parquet file{hint}: {exc}. Check that the file was written completely."
            ) from exc
    try:
        frame = pd.read_csv(io.BytesIO(data))
    except pd.errors.EmptyDataError as exc:
        raise UnusableFileError(f"{uri}: the CSV file has no header and no rows; re-run the upstream export") from exc
    except UnicodeDecodeError as exc:
        looks = " (it looks like Parquet: set data.format to parquet)" if data[:4] == b"PAR1" else ""
        raise UnusableFileError(f"{uri}: not a UTF-8 CSV file{looks}") from exc
    except pd.errors.ParserError as exc:
        raise UnusableFileError(f"{uri}: not a valid CSV file: {exc}") from exc
    if frame.shape[1] == 1:
        header = str(frame.columns[0])
        for delimiter, name in ((";", "';'"), ("\t", "a tab")):
            if delimiter in header:
                raise UnusableFileError(
                    f"{uri}: the CSV file has a single column {header[:80]!r}: the delimiter looks wrong "
                    f"(the header contains {name}); write the file with ',' as delimiter"
                )
    return frame


def _is_text(data: bytes) -> bool:
    try:
        data[:1024].decode()
    except UnicodeDecodeError:
        return False
    return True


class DatasetHook(BaseHook):
    """Read and write data files at a local path or an ``s3://`` URI (S3 through the amazon provider's S3Hook)."""

    hook_name = "Dataset (local or S3)"

    def __init__(self, aws_conn_id: str = "aws_default") -> None:
        super().__init__()
        self.aws_conn_id = aws_conn_id

    def read_frame(self, uri: str, format: str | None = None) -> pd.DataFrame:
        """A frame from a Parquet or CSV file, or from every such file under a folder or an S3 prefix ending in /."""
        import pandas as pd

        if _is_s3(uri) and not uri.endswith("/"):
            fmt = _format_of(uri, format)
            return _parse(self.read_bytes(uri), fmt, uri)
        if not _is_s3(uri) and not Path(uri).is_dir():
            if uri.endswith("/"):
                raise DatasetError(f"{uri}: folder not found; check data.uri")
            fmt = _format_of(uri, format)
            return _parse(self.read_bytes(uri), fmt, uri)

        names = self._list(uri)
        fmt = _prefix_format(uri, names, format)
        parts = [name for name in names if name.lower().endswith(f".{fmt}")]
        if not parts:
            raise DatasetError(
                f"{uri}: no .{fmt} files here ({len(names)} other files); check data.uri and data.format"
            )
        frames = [_parse(self.read_bytes(name), fmt, name) for name in parts]
        self.log.info("Read %d %s files under %s", len(frames), fmt, uri)
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]

    def read_bytes(self, uri: str) -> bytes:
        """The whole file or object; snapshots and models are read this way and checked against their sha256."""
        if not _is_s3(uri):
            path = Path(uri)
            if path.is_dir():
                raise DatasetError(f"{uri}: is a folder; end the URI with / to read every file in it")
            try:
                return path.read_bytes()
            except FileNotFoundError:
                raise DatasetError(f"{uri}: file not found; check data.uri and that the upstream export ran") from None
            except OSError as exc:
                raise DatasetError(f"{uri}: cannot read the file: {exc.strerror}") from exc
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = _split_s3(uri)
        try:
            return self._s3.get_conn().get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            raise self._s3_error(uri, exc) from exc
        except BotoCoreError as exc:
            raise DatasetError(f"{uri}: cannot read from S3 with connection {self.aws_conn_id!r}: {exc}") from exc

    def read_snapshot_windows(
        self,
        validated: Validated,
        timestamp_column: str,
        *,
        train_columns: Sequence[str],
        eval_columns: Sequence[str],
        limit: int | None = None,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The validated snapshot's train and eval rows, each with only the columns a step uses (an empty list skips
        that window) and at most ``limit`` rows when given; IntegrityError for a snapshot whose sha256 is not the one
        validate_data recorded."""
        from airflow_ml_provider.core.snapshot import window_rows

        uri = validated.snapshot_uri
        data = verified(self.read_bytes(uri), validated.snapshot_sha256, uri, written_by=validated.STEP)
        return (
            window_rows(data, validated.windows, timestamp_column, "train", train_columns, limit),
            window_rows(data, validated.windows, timestamp_column, "eval", eval_columns, limit),
        )

    def read_model(self, trained: Trained) -> Any:
        """The candidate pipeline ``train`` wrote, verified against its sha256 before unpickling (IntegrityError)."""
        import pickle

        uri = trained.model_uri
        return pickle.loads(verified(self.read_bytes(uri), trained.model_sha256, uri, written_by=trained.STEP))

    def write_bytes(self, uri: str, data: bytes) -> None:
        """Write (or replace) a file or object; local parent folders are created."""
        if not _is_s3(uri):
            path = Path(uri)
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
            except OSError as exc:
                raise DatasetError(
                    f"{uri}: cannot write the file: {exc.strerror}; check the path and its permissions"
                ) from exc
            return
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = _split_s3(uri)
        try:
            self._s3.load_bytes(data, key=key, bucket_name=bucket, replace=True)
        except ClientError as exc:
            raise self._s3_error(uri, exc) from exc
        except BotoCoreError as exc:
            raise DatasetError(f"{uri}: cannot write to S3 with connection {self.aws_conn_id!r}: {exc}") from exc
        self.log.info("Wrote %d bytes to %s", len(data), uri)

    def write_new(self, uri: str, data: bytes) -> None:
        """Create a file or object that must not exist yet; ``FileExistsError`` when it does (nothing is replaced).

        Append-only records (the promotion ledger) rely on it: of two writers racing for one name, one wins and the
        other learns it. S3 makes this atomic with a conditional write (``If-None-Match: *``)."""
        if not _is_s3(uri):
            path = Path(uri)
            # Written aside, then linked: the name appears with its whole content or not at all (an exclusive open
            # would show a racing reader an empty file for a moment).
            aside = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                aside.write_bytes(data)
                os.link(aside, path)
            except FileExistsError:
                raise
            except OSError as exc:
                raise DatasetError(
                    f"{uri}: cannot write the file: {exc.strerror}; check the path and its permissions"
                ) from exc
            finally:
                aside.unlink(missing_ok=True)
            return
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = _split_s3(uri)
        try:
            self._s3.get_conn().put_object(Bucket=bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict"):
                raise FileExistsError(uri) from None
            raise self._s3_error(uri, exc) from exc
        except BotoCoreError as exc:
            raise DatasetError(f"{uri}: cannot write to S3 with connection {self.aws_conn_id!r}: {exc}") from exc

    def list_uris(self, prefix_uri: str) -> list[str]:
        """URIs of every file under a local folder or S3 prefix, sorted; empty when there is none (or no folder)."""
        if not _is_s3(prefix_uri):
            folder = Path(prefix_uri)
            return sorted(str(p) for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []
        from botocore.exceptions import ClientError

        bucket, prefix = _split_s3(prefix_uri)
        try:
            keys = self._s3.list_keys(bucket_name=bucket, prefix=prefix) or []
        except ClientError as exc:
            raise self._s3_error(prefix_uri, exc) from exc
        return sorted(f"s3://{bucket}/{key}" for key in keys if not key.endswith("/"))

    def exists(self, uri: str) -> bool:
        """Whether a file (or, for a URI ending in /, anything under the folder or prefix) exists."""
        if not _is_s3(uri):
            path = Path(uri)
            return path.is_dir() and any(path.iterdir()) if uri.endswith("/") else path.exists()
        from botocore.exceptions import ClientError

        bucket, key = _split_s3(uri)
        hook = self._s3
        try:
            if uri.endswith("/"):
                return bool(hook.list_keys(bucket_name=bucket, prefix=key, max_items=1))
            return hook.head_object(key, bucket) is not None
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return False
            raise self._s3_error(uri, exc) from exc

    def _list(self, uri: str) -> list[str]:
        """URIs of every file under a local folder or an S3 prefix, sorted."""
        if not _is_s3(uri):
            return sorted(str(p) for p in Path(uri).rglob("*") if p.is_file())
        uris = self.list_uris(uri)
        if not uris:
            raise DatasetError(f"{uri}: no objects under this prefix; check data.uri and that the upstream export ran")
        return uris

    @cached_property
    def _s3(self) -> S3Hook:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    def _s3_error(self, uri: str, exc: Exception) -> DatasetError:
        error = getattr(exc, "response", {}).get("Error", {})
        code = str(error.get("Code", ""))
        bucket = _split_s3(uri)[0]
        if code in ("NoSuchKey", "404", "NotFound"):
            return DatasetError(f"{uri}: no such S3 object; check data.uri and that the upstream export ran")
        if code == "NoSuchBucket":
            return DatasetError(
                f"{uri}: bucket {bucket!r} does not exist; check the URI and the endpoint of connection "
                f"{self.aws_conn_id!r}"
            )
        if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return DatasetError(
                f"{uri}: access denied ({code}); check the credentials of Airflow connection {self.aws_conn_id!r} "
                f"and that they may access bucket {bucket!r}"
            )
        return DatasetError(f"{uri}: S3 error {code or type(exc).__name__}: {error.get('Message') or exc}")
