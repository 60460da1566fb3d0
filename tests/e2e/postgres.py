"""A throwaway PostgreSQL cluster on loopback from Debian's ``postgresql`` package, for the tests that run Airflow
as a team would: several processes writing the metadata DB at once, which SQLite does not survive (a write from the
api-server's event loop can wait on a lock another request of the same process holds, until "database is locked").
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
from pathlib import Path

USER = "airflow"


def url(port: int, database: str) -> str:
    return f"postgresql+psycopg2://{USER}@127.0.0.1:{port}/{database}"


def bin_dir() -> Path | None:
    """The newest installed server's binaries, or None without the Debian package."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def init_cluster(root: Path, port: int) -> tuple[list[str], str | None]:
    """``initdb`` under ``root`` (trust auth, no fsync); returns the server's command and the user to run it as
    (``postgres`` when we are root: the server refuses to run as root)."""
    pg_bin = bin_dir()
    if pg_bin is None:
        raise RuntimeError("PostgreSQL is not installed: `make system-deps` (apt-get install postgresql)")
    run_as = "postgres" if os.geteuid() == 0 else None
    data, sockets = root / "pgdata", root / "pgsock"
    root.chmod(0o755)  # the postgres user must reach its data and socket folders
    for folder in (data, sockets):
        folder.mkdir()
        if run_as:
            shutil.chown(folder, run_as, run_as)
    initdb = [str(pg_bin / "initdb"), "-D", str(data), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"]
    subprocess.run(initdb, check=True, user=run_as, cwd=root, stdout=subprocess.DEVNULL, timeout=120)
    command = [str(pg_bin / "postgres"), "-D", str(data), "-p", str(port), "-k", str(sockets),
               "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"]  # fmt: skip
    return command, run_as


def create_databases(port: int, names: tuple[str, ...]) -> bool:
    """Create the databases; raises while the server is still starting (callers poll it)."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=port, user=USER, dbname="postgres")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for name in names:
                cur.execute(f"CREATE DATABASE {name}")
    finally:
        conn.close()
    return True
