# The two promises: `make demo` and `make test` work on a fresh clone. Everything they need is installed here.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system-deps demo test test-fast lint airflow schema clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(PYTHON) -m uv venv --quiet --allow-existing $(VENV)
	$(PYTHON) -m uv pip install --quiet -p $(BIN)/python -r requirements.lock -e '.[dev]'
	touch $(STAMP)

# Debian packages the end-to-end and production-stack tests use: Chromium for the browser check,
# docker-compose to validate the compose file (no engine needed), PostgreSQL and Redis for the Celery stack.
system-deps:
	@missing=""; \
	for pair in chromium:chromium chromedriver:chromium-driver docker-compose:docker-compose \
	            redis-server:redis-server pg_ctlcluster:postgresql; do \
	  cmd=$${pair%%:*}; pkg=$${pair##*:}; command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

demo: setup
	$(BIN)/airflow-ml demo

airflow: setup
	$(BIN)/airflow-ml standalone

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/airflow-ml lint dags/configs

schema: setup
	$(BIN)/airflow-ml schema > docs/city-config.schema.json
	$(BIN)/airflow-ml schema --markdown > docs/config-reference.md

test-fast: setup
	$(BIN)/pytest -m "not slow and not e2e and not stack"

test: setup system-deps
	$(BIN)/ruff check .
	$(BIN)/pytest

clean:
	rm -rf .airflow-ml test-artifacts
