# One image for every Python service of docker-compose.yml (init, MLflow, the Airflow
# components, serving, locust); each runs a different `mlops …` command.
FROM python:3.11-slim-bookworm

# mysqlclient (pulled in by the Airflow MySQL provider) builds against these;
# curl is for the compose healthchecks.
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential pkg-config libmariadb-dev curl \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir "uv==0.13.9"

ENV UV_PROJECT_ENVIRONMENT=/opt/venv \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    PATH=/opt/venv/bin:$PATH \
    MLOPS_DATA_DIR=/data

WORKDIR /app
# Dependencies first, so code changes do not reinstall them.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
COPY sql ./sql
COPY dags ./dags
COPY serving ./serving
COPY tests/load ./tests/load
RUN uv sync --frozen --no-dev

RUN useradd --create-home --uid 10001 mlops && mkdir -p /data && chown mlops /data
USER mlops
EXPOSE 3000 5000 8080 8089
CMD ["mlops", "--help"]
