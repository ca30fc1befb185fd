"""The models that serve: each registry alias resolved, cached on disk, hot-swapped.

`champion` answers the requests; `challenger`, when the alias is set, scores them in
shadow (`serving.shadow`). Cache layout (shared by the worker processes and both aliases;
every write is a rename, so readers never see half a model):

    <cache>/<model name>/v<version>/model/          the downloaded MLflow pyfunc
    <cache>/<model name>/v<version>/champion.json   name, version, run, base date, metrics
    <cache>/<model name>/<alias>.json               which version held the alias last
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mlflow.artifacts
import mlflow.pyfunc
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from mlops_platform.model import CreditScoreModel
from mlops_platform.registry import CHALLENGER, CHAMPION
from serving.metrics import serving_metrics

METADATA_FILE = "champion.json"
KEEP_VERSIONS = 3  # the champion and a couple of rollback targets stay cached
STALE_DOWNLOAD_S = 3600
# "No such alias / model" answers; anything else from MLflow means it is unreachable or broken.
NOT_FOUND_CODES = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model version, the alias it was loaded for, and what `/metadata` reports."""

    model: CreditScoreModel
    model_name: str
    version: str
    alias: str
    run_id: str | None
    base_dt: str | None
    metrics: dict[str, float]
    loaded_at: datetime
    from_cache: bool

    def info(self) -> dict[str, Any]:
        """Everything but the model, for `/metadata`."""
        return {k: v for k, v in self.__dict__.items() if k != "model"}


class AliasSource:
    """Finds an alias's version in the MLflow registry and keeps a local copy of each version."""

    def __init__(
        self, model_name: str, cache_dir: Path, tracking_uri: str, alias: str = CHAMPION
    ) -> None:
        self.model_name = model_name
        self.alias = alias
        self.tracking_uri = tracking_uri
        self.directory = cache_dir / model_name
        # Resolving a version's logged model goes through the process-wide URI, whatever
        # the client was given; unset, it would be a local ./mlruns that has no models.
        mlflow.set_tracking_uri(tracking_uri)

    def _client(self) -> MlflowClient:
        return MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)

    def registered_version(self) -> str | None:
        """The version the alias points at now, or None when there is no such alias."""
        try:
            found = self._client().get_model_version_by_alias(self.model_name, self.alias)
        except MlflowException as error:
            if error.error_code in NOT_FOUND_CODES:
                return None
            raise
        return str(found.version)

    @property
    def pointer(self) -> Path:
        """The file naming the version that held the alias last."""
        return self.directory / f"{self.alias}.json"

    def load(self, version: str) -> LoadedModel:
        """Load `version`, downloading it into the cache first unless it is there already."""
        version_dir = self.directory / f"v{version}"
        if not (version_dir / METADATA_FILE).exists():
            self._download(version, version_dir)
        loaded = self._load_dir(version_dir, from_cache=False)
        _write_atomically(self.pointer, {"version": version})
        self._prune(keep=version_dir)
        return loaded

    def load_cached(self) -> LoadedModel | None:
        """The version cached last for the alias, marked `from_cache`; None when there is none."""
        if not self.pointer.exists():
            return None
        version = json.loads(self.pointer.read_text())["version"]
        return self._load_dir(self.directory / f"v{version}", from_cache=True)

    def forget(self) -> None:
        """The alias is gone from the registry: no cached version holds it any more."""
        self.pointer.unlink(missing_ok=True)

    def startup(self) -> LoadedModel | None:
        """The registered version; else the cached one (MLflow down, or unloadable); else None."""
        try:
            version = self.registered_version()
        # requests' connection errors are OSErrors; MlflowException wraps the rest.
        except (MlflowException, OSError) as error:
            log.warning("MLflow unreachable (%s); trying the cached %s", error, self.alias)
            return self._cached_or_none()
        if version is None:
            if self.alias == CHAMPION:
                log.warning("%s has no alias %r: not ready", self.model_name, self.alias)
            else:
                self.forget()  # no challenger: nothing scores in shadow after a restart either
            return None
        try:
            return self.load(version)
        # Also a model this code cannot use (another flavour, other feature columns).
        except (MlflowException, OSError, TypeError, ValueError) as error:
            log.error("cannot load %s v%s (%s); trying the cached %s",
                      self.model_name, version, error, self.alias)  # fmt: skip
            return self._cached_or_none()

    def _cached_or_none(self) -> LoadedModel | None:
        try:
            cached = self.load_cached()
        # The last fallback: whatever is wrong with the cache, the service stays up (not
        # ready without a champion, with the reason logged) and the poller keeps trying.
        except Exception:
            log.exception("the cached %s in %s cannot be loaded", self.alias, self.directory)
            return None
        if cached is None and self.alias == CHAMPION:
            log.error("no champion cached in %s either: not ready", self.directory)
        return cached

    def _download(self, version: str, version_dir: Path) -> None:
        client = self._client()
        registered = client.get_model_version(self.model_name, version)
        run = client.get_run(registered.run_id) if registered.run_id else None
        run_tags = run.data.tags if run else {}
        metadata = {
            "model_name": self.model_name,
            "version": version,
            "run_id": registered.run_id,
            "base_dt": registered.tags.get("base_dt") or run_tags.get("base_dt"),
            "metrics": {
                k: v for k, v in sorted((run.data.metrics if run else {}).items())
                if k.startswith("test_")
            },
        }  # fmt: skip
        scratch = self.directory / f".download-{uuid.uuid4().hex}"
        try:
            mlflow.artifacts.download_artifacts(
                artifact_uri=f"models:/{self.model_name}/{version}",
                dst_path=str(scratch / "model"),
                tracking_uri=self.tracking_uri,
                registry_uri=self.tracking_uri,
            )
            (scratch / METADATA_FILE).write_text(json.dumps(metadata, indent=1))
            try:
                os.rename(scratch, version_dir)
            except OSError:
                if not (version_dir / METADATA_FILE).exists():
                    raise
                # Another worker finished the same download first; its copy is as good.
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _load_dir(self, version_dir: Path, *, from_cache: bool) -> LoadedModel:
        # Caches written before both aliases shared them recorded an alias of their own.
        metadata = json.loads((version_dir / METADATA_FILE).read_text()) | {"alias": self.alias}
        model = mlflow.pyfunc.load_model(str(version_dir / "model")).unwrap_python_model()
        if not isinstance(model, CreditScoreModel):
            raise TypeError(
                f"{self.model_name} v{metadata['version']} is a {type(model).__name__},"
                " not a CreditScoreModel pyfunc"
            )
        return LoadedModel(
            model=model, **metadata, loaded_at=datetime.now(UTC), from_cache=from_cache
        )

    def _prune(self, keep: Path) -> None:
        """Delete all but the newest cached versions (never one an alias points at), and
        downloads abandoned by a crash."""
        pointed_at = {keep} | {
            self.directory / f"v{json.loads(pointer.read_text())['version']}"
            for pointer in self.directory.glob("*.json")
        }
        versions = sorted(
            (p for p in self.directory.glob("v*") if p not in pointed_at),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        stale = [
            p for p in self.directory.glob(".download-*")
            if time.time() - p.stat().st_mtime > STALE_DOWNLOAD_S
        ]  # fmt: skip
        for path in [*versions[KEEP_VERSIONS - 1 :], *stale]:
            shutil.rmtree(path, ignore_errors=True)


def _write_atomically(path: Path, content: dict[str, Any]) -> None:
    scratch = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(scratch, "w") as handle:
        json.dump(content, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(scratch, path)


class AliasHolder:
    """Holds the version an alias points at and polls the alias in a thread, swapping in
    new versions.

    Requests read `model` once and use that object throughout, so a swap (one reference
    assignment) never mixes two models within a request. The champion keeps serving when
    its alias disappears; the challenger is dropped then (shadow scoring stops).
    """

    def __init__(self, source: AliasSource, poll_interval_s: float) -> None:
        self.source = source
        self.poll_interval_s = poll_interval_s
        self.model: LoadedModel | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._poll, name=f"{source.alias}-poller", daemon=True
        )

    def beside(self, champion_version: str) -> LoadedModel | None:
        """The held model unless it is `champion_version`: a challenger alias on the
        champion's own version has nothing to compare, so it neither shadows nor canaries."""
        held = self.model
        return held if held is not None and held.version != champion_version else None

    def start(self) -> None:
        """Load the alias's version (or the cached one) and start polling."""
        self.model = self.source.startup()
        self._thread.start()

    def refresh(self) -> None:
        """Check the alias once; load and swap in the version it points at if that changed."""
        version = self.source.registered_version()
        current, alias = self.model, self.source.alias
        if version is None:
            if current is not None and alias == CHALLENGER:
                log.info("alias %r removed; v%s no longer scores in shadow", alias,
                         current.version)  # fmt: skip
                self.model = None
                self.source.forget()
            elif current is not None:
                log.warning("alias %r disappeared; still serving v%s", alias, current.version)
            return
        if current is not None and current.version == version:
            if current.from_cache:
                # The registry is reachable again and agrees with the cached copy.
                self.model = replace(current, from_cache=False)
            return
        self.model = self.source.load(version)
        serving_metrics().reloads.labels(result="success").inc()
        log.info(
            "%s of %s is now v%s (was %s)", alias, self.source.model_name, version,
            f"v{current.version}" if current else "none",
        )  # fmt: skip

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.refresh()
            # A failed poll must not end polling: the current model keeps serving and the
            # next poll tries again. An unreachable MLflow is expected now and then, so
            # only other failures get a traceback.
            except Exception as error:
                serving_metrics().reloads.labels(result="failure").inc()
                expected = isinstance(error, (MlflowException, OSError))
                log.warning(
                    "checking the %s alias failed (%s); retrying in %ss", self.source.alias,
                    error, self.poll_interval_s, exc_info=not expected,
                )  # fmt: skip
