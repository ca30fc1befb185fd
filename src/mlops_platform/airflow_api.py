"""Airflow's REST API through the official client (`apache-airflow-client`).

The native stack and compose both use Airflow's simple auth manager: a user name and
password buy a JWT at `/auth/token` (outside the versioned API, so not in the client),
which the client then sends as a Bearer token.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from mlops_platform.config import Settings, get_settings

if TYPE_CHECKING:
    from airflow_client.client.models import DAGRunResponse

ADMIN_USER = "admin"
GENERATED_PASSWORDS = "simple_auth_manager_passwords.json.generated"
FINISHED_STATES = ("success", "failed")


def generated_password(airflow_home: Path) -> str:
    """The admin password the simple auth manager keeps in Airflow's home."""
    return json.loads((airflow_home / GENERATED_PASSWORDS).read_text())[ADMIN_USER]


def admin_password(settings: Settings, airflow_home: Path) -> str:
    """AIRFLOW_ADMIN_PASSWORD, or the one Airflow generated into its home (native stack)."""
    return settings.airflow_admin_password or generated_password(airflow_home)


def healthy(base_url: str) -> bool:
    """Whether every Airflow component reports healthy (the endpoint needs no login)."""
    try:
        health = httpx.get(f"{base_url.rstrip('/')}/api/v2/monitor/health", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return False
    return all(part.get("status") == "healthy" for part in health.values() if part)


class AirflowApi:
    """The few calls the demo and the tests make: list, unpause, trigger and watch DAG runs."""

    def __init__(self, base_url: str, password: str, username: str = ADMIN_USER) -> None:
        self.base_url = base_url.rstrip("/")
        self._credentials = {"username": username, "password": password}
        self._client = None

    @classmethod
    def for_settings(cls, settings: Settings | None = None, airflow_home: Path | None = None):
        settings = settings or get_settings()
        home = airflow_home or settings.airflow_home or settings.mlops_data_dir / "airflow"
        return cls(settings.airflow_api_url, admin_password(settings, home))

    def _api(self):
        from airflow_client import client

        if self._client is None:
            token = httpx.post(f"{self.base_url}/auth/token", json=self._credentials, timeout=30)
            token.raise_for_status()
            configuration = client.Configuration(
                host=self.base_url, access_token=token.json()["access_token"]
            )
            self._client = client.ApiClient(configuration)
        return client, self._client

    def dag_ids(self) -> set[str]:
        client, api = self._api()
        return {dag.dag_id for dag in client.DAGApi(api).get_dags(limit=100).dags}

    def unpause(self, dag_id: str) -> None:
        client, api = self._api()
        client.DAGApi(api).patch_dag(dag_id, client.DAGPatchBody(is_paused=False))

    def trigger(
        self, dag_id: str, logical_date: datetime | None = None, conf: dict | None = None
    ) -> str:
        """Start a run (logical_date None: a run without one, as Airflow 3 allows); its id."""
        client, api = self._api()
        body = client.TriggerDAGRunPostBody(logical_date=logical_date, conf=conf or {})
        return client.DagRunApi(api).trigger_dag_run(dag_id, body).dag_run_id

    def post_asset_event(self, uri: str, extra: dict) -> None:
        """An asset event from outside Airflow: the DAGs scheduled on the asset start as usual."""
        client, api = self._api()
        assets = client.AssetApi(api).get_assets(uri_pattern=uri).assets
        asset = next((asset for asset in assets if asset.uri == uri), None)
        if asset is None:
            raise LookupError(f"Airflow knows no asset {uri}; have its DAGs been parsed?")
        body = client.CreateAssetEventsBody(asset_id=asset.id, extra=extra)
        client.AssetApi(api).create_asset_event(body)

    def runs(self, dag_id: str) -> list[DAGRunResponse]:
        """The DAG's runs, newest first."""
        client, api = self._api()
        return client.DagRunApi(api).get_dag_runs(dag_id, order_by=["-run_after"]).dag_runs

    def task_hostnames(self, dag_id: str, run_id: str) -> dict[str, str]:
        """Task id → the host (worker) each task of the run ran on."""
        client, api = self._api()
        tasks = client.TaskInstanceApi(api).get_task_instances(dag_id, run_id).task_instances
        return {task.task_id: task.hostname for task in tasks if task.hostname}

    def finished_run(self, dag_id: str, run_id: str | None = None) -> DAGRunResponse | None:
        """The newest finished run (or run `run_id` once finished); a failed run raises."""
        for run in self.runs(dag_id):
            if (run_id is None or run.dag_run_id == run_id) and run.state in FINISHED_STATES:
                if run.state == "failed":
                    raise RuntimeError(f"{dag_id} run {run.dag_run_id} failed; see the Airflow UI")
                return run
        return None
