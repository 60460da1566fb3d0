# The Airflow image of the docker-compose stack: Apache Airflow 3.3.2 plus this provider and its ML libraries.
#   docker compose build      (or: docker build -t airflow-ml-provider:0.1.0 .)
# DAG files and city configs are not baked in: compose mounts ./dags. On Kubernetes, bake them in or use git-sync.
FROM apache/airflow:3.3.2-python3.11

# The image runs as the `airflow` user; pip installs into its environment. Pinning apache-airflow to the image's
# own version (AIRFLOW_VERSION is set by the base image) keeps pip from upgrading or downgrading Airflow itself.
COPY --chown=airflow:0 pyproject.toml README.md /opt/airflow-ml-provider/
COPY --chown=airflow:0 airflow_ml_provider/ /opt/airflow-ml-provider/airflow_ml_provider/
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow-ml-provider
