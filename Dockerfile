# The one image every Airflow service in docker-compose.yml runs: Airflow 3.3.2 plus this project.
# Build: `docker compose build` (or `docker build -t clinic-pipeline:0.1.0 .`).
#
# Base: the official *slim* image (Airflow core, its entrypoint, the `airflow` user, uv, the runtime libraries),
# not the full one. The full image carries ~60 providers at the versions of Airflow's own constraints; ours
# would then sit on top of packages nobody locked or tested together. Here every Python package comes from one
# hash-pinned lock, deploy/image/requirements.lock: the runtime dependencies at the versions the tests run on
# (requirements.lock) plus the providers this topology needs and the slim image lacks (celery for the
# CeleryExecutor, fab for users and roles). deploy/image/lock.sh regenerates it; tests/deploy/test_image.py
# checks it against requirements.lock. Unlike requirements.lock (x86_64 only) it is universal: the image also
# builds on aarch64 hosts.
#
# The tag pins Airflow and Python: 3.11, the Python the locks are compiled for.
FROM apache/airflow:slim-3.3.2-python3.11

# Sources live inside AIRFLOW_HOME; the build writes build/ and *.egg-info next to pyproject.toml.
ARG SRC=/opt/airflow/clinic-pipeline

# The slim image may leave AIRFLOW_HOME owned by root; the services run as AIRFLOW_UID with group 0 (the
# official images' convention for arbitrary UIDs), so the folders they write must be group-writable.
USER root
RUN mkdir -p /opt/airflow/logs /opt/airflow/dags /opt/airflow/plugins ${SRC} \
 && chown -R airflow:0 /opt/airflow \
 && chmod -R g+rwX /opt/airflow
USER airflow

# 1) Dependencies, in their own layer so a code change does not reinstall them. --require-hashes refuses any
# file whose hash is not in the lock; uv installs into the image's own environment (VIRTUAL_ENV).
COPY --chown=airflow:0 deploy/image/requirements.lock ${SRC}/deploy/image/requirements.lock
RUN uv pip install --no-cache --require-hashes -r ${SRC}/deploy/image/requirements.lock

# 2) The project's packages, installed editable (as `make install` does), so that code locating files next to
# the sources finds them: the GX File Data Context is EXPECTATIONS_ROOT = <source root>/expectations
# (clinic_pipeline/quality/suite_rules.py). A regular install would put the modules in site-packages, where no
# expectations/ exists. --no-deps: every dependency came from the lock above; --no-build-isolation: the build
# backend (setuptools) is in the lock too, so nothing unpinned is downloaded here. The suites are baked in and
# docker-compose.yml mounts the checkout's expectations/ over them (like dags/ and plugins/), so a `git pull`
# updates suites, DAGs and plugins without a rebuild; a change under clinic_pipeline/, transforms/ or
# fhir_mappings/ needs `docker compose build`.
COPY --chown=airflow:0 pyproject.toml README.md ${SRC}/
COPY --chown=airflow:0 clinic_pipeline/ ${SRC}/clinic_pipeline/
COPY --chown=airflow:0 transforms/ ${SRC}/transforms/
COPY --chown=airflow:0 fhir_mappings/ ${SRC}/fhir_mappings/
COPY --chown=airflow:0 expectations/ ${SRC}/expectations/
RUN uv pip install --no-cache --no-deps --no-build-isolation --editable ${SRC}

# 3) Fail the build, not the first task, when a module docker-compose.yml names cannot be imported: the
# executor and the Celery app of the worker healthcheck, the auth manager, the database drivers, the
# pipeline's own entry points (the DAG files import clinic_pipeline.orchestration.assets), and the suites
# where the gates look for them.
RUN python -c "import airflow.providers.celery.executors.celery_executor, \
airflow.providers.fab.auth_manager.fab_auth_manager, psycopg2, redis.asyncio, \
clinic_pipeline.orchestration.assets, clinic_pipeline.triggers.redis_streams, clinic_pipeline.cli; \
from clinic_pipeline.quality.suite_rules import EXPECTATIONS_ROOT as root; \
assert (root / 'gx' / 'great_expectations.yml').is_file(), root" \
 && clinic-pipeline --help > /dev/null
