"""How `mlops serve` starts the service: a BentoML home of its own per service on a host."""

from __future__ import annotations

from pathlib import Path

from mlops_platform.config import Settings
from mlops_platform.stack import serving_environment


def test_two_services_on_one_host_get_their_own_bentoml_home(tmp_path: Path) -> None:
    first = serving_environment(Settings(mlops_data_dir=tmp_path, serving_port=3000))
    second = serving_environment(Settings(mlops_data_dir=tmp_path, serving_port=3001))

    homes = {Path(first["BENTOML_HOME"]), Path(second["BENTOML_HOME"])}
    assert len(homes) == 2
    assert all(home.is_relative_to(tmp_path.resolve() / "serving") for home in homes)
    assert first["PATH"] == second["PATH"]  # the rest of the environment is passed on
