"""Print a .env for the docker-compose stack: .env.example with a fresh random value for every empty secret.

    python3 deploy/new_env.py > .env

docker-compose.yaml has no default for any secret and refuses to start while one is missing, so the stack never
runs on a password that is printed in a public file. Standard library only: runs before anything is installed.
"""

from __future__ import annotations

import base64
import os
import secrets
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / ".env.example"


def secret_for(name: str, settings: dict[str, str]) -> str:
    if name == "AIRFLOW_FERNET_KEY":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    if name == "AIRFLOW_USER_PASSWORDS":  # one password per user of AIRFLOW_USERS (name:role pairs)
        users = [pair.split(":", 1)[0].strip() for pair in settings["AIRFLOW_USERS"].split(",") if pair.strip()]
        return ",".join(f"{user}:{secrets.token_urlsafe(18)}" for user in users)
    return secrets.token_urlsafe(32)  # letters, digits, - and _: safe inside URLs and JSON connection strings


def new_env(example: str) -> str:
    settings: dict[str, str] = {}
    lines = []
    for line in example.splitlines():
        name, sep, value = line.partition("=")
        if sep and not line.lstrip().startswith("#"):
            if not value.strip():
                value = secret_for(name.strip(), settings)
            settings[name.strip()] = value
            line = f"{name}={value}"
        lines.append(line)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(new_env(EXAMPLE.read_text()))
