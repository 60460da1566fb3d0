# The MLflow tracking server of the docker-compose stack: Postgres backend, artifacts proxied to S3 (MinIO).
#   docker compose build mlflow
FROM python:3.11-slim

ARG MLFLOW_VERSION=3.17.2
RUN pip install --no-cache-dir "mlflow==${MLFLOW_VERSION}" psycopg2-binary boto3 \
    && useradd --create-home --uid 1000 mlflow

USER mlflow
WORKDIR /home/mlflow
EXPOSE 5000
# The full `mlflow server ...` command line is in docker-compose.yaml.
CMD ["mlflow", "server", "--host", "0.0.0.0", "--port", "5000"]
