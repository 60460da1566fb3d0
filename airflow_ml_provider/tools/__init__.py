"""Tooling around the provider: the ``airflow-ml`` command line, the demo, the embedded default environment and
``airflow-ml standalone``, the REST client they share, status and lint. Nothing in the runtime (config, factory,
operators, hooks, core) imports from here."""
