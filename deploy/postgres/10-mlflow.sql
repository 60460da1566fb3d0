-- Runs once, when the Postgres data volume is first initialised (docker-entrypoint-initdb.d).
-- The `airflow` database and its owner come from POSTGRES_DB / POSTGRES_USER; this adds MLflow's own role and
-- database, so the tracking server never holds credentials to Airflow's metadata.
-- The password is read from the container's environment (MLFLOW_DB_PASSWORD, set from .env) with psql's \getenv.
\set ON_ERROR_STOP on
\getenv mlflow_password MLFLOW_DB_PASSWORD
SELECT :'mlflow_password' <> '' AS has_password \gset
\if :has_password
\else
  \echo 'MLFLOW_DB_PASSWORD is empty: set it in .env'
  SELECT 1/0;
\endif
CREATE ROLE mlflow LOGIN PASSWORD :'mlflow_password';
CREATE DATABASE mlflow OWNER mlflow;
REVOKE ALL ON DATABASE mlflow FROM PUBLIC;
