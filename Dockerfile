# The project image: one runtime image for every Python service of docker-compose.yml (init,
# MLflow, the Airflow components, serving, the CLI), each running a different `mlops …`
# command, and a separate `load` image for locust.
#   runtime  the locked environment without dev or load-test packages, no compilers, non-root
#   load     runtime + locust + tests/load
# Base images are arguments so mirrors and air-gapped registries can stand in for Docker Hub.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
# mysqlclient (the prediction log's driver) compiles against the MariaDB client headers.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libmariadb-dev \
    && rm -rf /var/lib/apt/lists/*
ARG UV_VERSION=0.13.9
RUN pip install --no-cache-dir "uv==${UV_VERSION}"
ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_NO_CACHE=1
WORKDIR /app
# Dependencies first, so a code change does not reinstall them. mysql-connector-python
# (65 MB) comes with the MySQL provider for a hook we never use; packages' own test suites
# (136 MB) are never imported. README.md (the package's readme) comes with the code, so a
# README edit does not reinstall the dependencies.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-default-groups --no-install-package mysql-connector-python \
        --no-install-project \
    && find /opt/venv/lib -depth -type d -name tests -path "*/site-packages/*" -exec rm -rf {} +
COPY README.md ./
COPY src ./src
COPY sql ./sql
COPY dags ./dags
COPY serving ./serving
RUN uv sync --frozen --no-default-groups --no-install-package mysql-connector-python

FROM ${PYTHON_IMAGE} AS runtime
# libmariadb3 is mysqlclient's runtime library. The volume mount points exist, owned by the
# service user, so new named volumes take that owner.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libmariadb3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 mlops \
    && mkdir -p /data/airflow /data/mlflow-artifacts /data/serving \
    && chown -R mlops /data
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /app /app
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLOPS_DATA_DIR=/data
# The commit the image was built from: lineage tags on every model trained inside it.
ARG GIT_COMMIT=unknown
ENV MLOPS_GIT_COMMIT=${GIT_COMMIT}
LABEL org.opencontainers.image.revision=${GIT_COMMIT} \
      org.opencontainers.image.title="mlops-platform"
WORKDIR /app
USER mlops
EXPOSE 3000 5000 8080
CMD ["mlops", "--help"]

FROM builder AS load-builder
RUN uv sync --frozen --no-default-groups --no-install-package mysql-connector-python \
        --group load

FROM runtime AS load
COPY --from=load-builder /opt/venv /opt/venv
COPY tests/__init__.py ./tests/__init__.py
COPY tests/load ./tests/load
EXPOSE 8089
CMD ["locust", "-f", "tests/load/locustfile.py"]
