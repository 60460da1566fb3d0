# The MLflow tracking server of the docker-compose stack: Postgres backend, artifacts proxied to S3 (MinIO), basic
# authentication (the `auth` extra: Flask-WTF).
#   docker compose build mlflow
FROM python:3.11-slim

ARG MLFLOW_VERSION=3.17.2
RUN pip install --no-cache-dir "mlflow[auth]==${MLFLOW_VERSION}" psycopg2-binary boto3 \
    && useradd --create-home --uid 1000 mlflow

USER mlflow
WORKDIR /home/mlflow
# The auth database lives in /home/mlflow/auth (a volume; created here so the volume belongs to the mlflow user).
RUN mkdir -p /home/mlflow/auth
COPY --chown=mlflow:mlflow mlflow-basic-auth.ini mlflow_users.py /home/mlflow/
ENV MLFLOW_AUTH_CONFIG_PATH=/home/mlflow/mlflow-basic-auth.ini
EXPOSE 5000
# The full `mlflow server ...` command line is in docker-compose.yaml.
CMD ["mlflow", "server", "--app-name", "basic-auth", "--host", "0.0.0.0", "--port", "5000"]
