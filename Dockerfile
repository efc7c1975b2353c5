# The one image every Airflow service in docker-compose.yml runs: Airflow 3.3.2 plus this project.
# Build: `docker compose build` (or `docker build -t clinic-pipeline:0.1.0 .`).
#
# The tag pins both Airflow and Python: requirements.lock was compiled for CPython 3.11 on x86_64 manylinux
# (see its header), so the base image's Python must be 3.11 too.
FROM apache/airflow:3.3.2-python3.11

# Sources live inside AIRFLOW_HOME, which the airflow user owns. The in-tree build writes build/ and
# *.egg-info next to pyproject.toml, hence --chown on every COPY.
ARG SRC=/opt/airflow/clinic-pipeline

# 1) Dependencies, in their own layer so a code change does not reinstall them.
# The lock pins and hashes every package (apache-airflow==3.3.2 included, the same as the base image, so
# that one is already satisfied). uv ships in the official image; --require-hashes refuses any file whose
# hash is not in the lock. The image's own providers (celery, postgres, redis, fab) stay installed, but
# they are not in the lock, so nothing checks them against the versions it sets: `pip check` after a build
# (or adding those providers to pyproject.toml and relocking) closes that gap.
COPY --chown=airflow:0 requirements.lock pyproject.toml ${SRC}/
RUN uv pip install --no-cache --require-hashes -r ${SRC}/requirements.lock

# 2) The project's packages. --no-deps: every dependency came from the lock above, and pip must not
# resolve or upgrade anything here. DAGs and expectation suites are not baked in: compose mounts them.
COPY --chown=airflow:0 clinic_pipeline/ ${SRC}/clinic_pipeline/
COPY --chown=airflow:0 transforms/ ${SRC}/transforms/
COPY --chown=airflow:0 fhir_mappings/ ${SRC}/fhir_mappings/
RUN pip install --no-cache-dir --no-deps ${SRC}
