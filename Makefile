# MLOps Level 1 reference platform. `make` alone lists the targets.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV ?= uv
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
APT_INSTALL := $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends
INSTALLED := .venv/.mlops-installed
PYTEST_ARGS ?=
DEMO_SIZE ?= full
LOAD_USERS ?= 20
LOAD_SECONDS ?= 30
SERVICE_URL ?=
STACK ?= native

.PHONY: help install test test-unit test-integration test-e2e test-compose test-monitoring lint format bench \
	bench-serving bench-serving-hostile bench-scale test-scale up down status demo serve load compose-build

help: ## Show the targets and what they do
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  \033[1m%-22s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: ## Install what is missing (apt: MariaDB server and client headers, promtool, amtool; uv) and sync the locked env
	@missing=""; \
	command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing="$$missing mariadb-server"; \
	dpkg -s libmariadb-dev >/dev/null 2>&1 || missing="$$missing libmariadb-dev"; \
	command -v pkg-config >/dev/null || missing="$$missing pkg-config"; \
	command -v promtool >/dev/null || missing="$$missing prometheus"; \
	command -v amtool >/dev/null || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then \
		echo "installing apt packages:$$missing"; \
		$(SUDO) apt-get update -qq && $(APT_INSTALL) $$missing || exit 1; \
	fi; \
	for daemon in prometheus prometheus-alertmanager; do \
		case " $$missing " in *" $$daemon "*) \
			echo "stopping the $$daemon daemon the package started (only its tool is needed)"; \
			if [ -d /run/systemd/system ]; then $(SUDO) systemctl disable --now $$daemon >/dev/null 2>&1; \
			else $(SUDO) service $$daemon stop >/dev/null 2>&1; fi || true;; \
		esac; \
	done
	@command -v $(UV) >/dev/null || python3 -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $(INSTALLED)

$(INSTALLED): pyproject.toml uv.lock
	@$(MAKE) --no-print-directory install

test: $(INSTALLED) ## Run the whole suite: unit, integration (real MariaDB, MLflow, BentoML) and e2e
	$(UV) run pytest $(PYTEST_ARGS)

test-unit: $(INSTALLED) ## Run only the unit tests (no servers needed)
	$(UV) run pytest tests/unit $(PYTEST_ARGS)

test-integration: $(INSTALLED) ## Run only the integration tests
	$(UV) run pytest tests/integration $(PYTEST_ARGS)

test-e2e: $(INSTALLED) ## Run only the end-to-end tests (real Airflow scheduler, the demo)
	$(UV) run pytest tests/e2e $(PYTEST_ARGS)

test-compose: $(INSTALLED) ## Build the images, run the compose stack and the demo loop in it (needs Docker)
	$(UV) run pytest tests/compose/test_compose_stack.py $(PYTEST_ARGS)

test-scale: $(INSTALLED) ## The scale-out overlay: Celery workers, replicas behind HAProxy, MariaDB replica
	$(UV) run pytest tests/compose/test_compose_scale.py $(PYTEST_ARGS)

test-monitoring: $(INSTALLED) ## The compose profile monitoring: targets up, rules loaded, an alert at the webhook
	$(UV) run pytest tests/compose/test_compose_monitoring.py $(PYTEST_ARGS)

lint: $(INSTALLED) ## Check formatting and lint rules with ruff
	$(UV) run ruff format --check .
	$(UV) run ruff check .

format: $(INSTALLED) ## Format the code and apply safe lint fixes
	$(UV) run ruff format .
	$(UV) run ruff check --fix .

bench: $(INSTALLED) ## Print the speed figures (load, snapshot, training, drift, batch) on throwaway servers
	$(UV) run python -m tests.bench.bench_feature_store
	$(UV) run python -m tests.bench.bench_pipeline
	$(UV) run python -m tests.bench.bench_drift

bench-serving: $(INSTALLED) ## Print the prediction service's throughput and latency with wrk (own servers)
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(APT_INSTALL) wrk; }
	$(UV) run python -m tests.bench.bench_serving

bench-serving-hostile: $(INSTALLED) ## Print what a 1.7 MB body of unknown fields costs the service and valid requests beside it
	$(UV) run python -m tests.bench.bench_serving_hostile

bench-scale: $(INSTALLED) ## Throughput through HAProxy with 3 serving replicas and with 1 (scale overlay; Docker, wrk)
	@command -v wrk >/dev/null || { $(SUDO) apt-get update -qq && $(APT_INSTALL) wrk; }
	$(UV) run python -m tests.bench.bench_scale

up: $(INSTALLED) ## Start the native stack in the background (MariaDB, MLflow, Airflow, BentoML)
	$(UV) run mlops stack up

down: ## Stop everything `make up` or `make demo` started
	$(UV) run mlops stack down

status: ## Show which services of the native stack are up, and their URLs
	$(UV) run mlops stack status

demo: $(INSTALLED) ## Run the whole Level 1 loop (DEMO_SIZE=small: quick; STACK=compose: in Docker)
	$(UV) run mlops demo --size $(DEMO_SIZE) --stack $(STACK)

compose-build: ## Build the project image once for every compose service, labelled with the commit
	GIT_COMMIT=$$(git rev-parse HEAD 2>/dev/null || echo unknown) docker compose build

serve: $(INSTALLED) ## Run only the prediction service in the foreground (port 3000)
	$(UV) run mlops serve

load: $(INSTALLED) ## Load-test a running service with locust (LOAD_USERS, LOAD_SECONDS; SERVICE_URL: default the stack's)
	$(UV) run python -m tests.load.run_load $(if $(SERVICE_URL),--url $(SERVICE_URL)) --users $(LOAD_USERS) --duration $(LOAD_SECONDS)
