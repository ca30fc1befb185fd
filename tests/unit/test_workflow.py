"""The GitHub workflow for users of the repository: valid, and it runs every suite."""

from __future__ import annotations

import shutil
import subprocess

import yaml

from mlops_platform.config import PROJECT_ROOT

WORKFLOW = PROJECT_ROOT / ".github" / "workflows" / "ci.yml"


def test_the_workflow_matches_github_s_schema() -> None:
    # No actionlint reaches this machine (its PyPI package downloads a binary); the schema
    # that check-jsonschema ships for GitHub workflows is the check available offline.
    result = subprocess.run(
        [shutil.which("check-jsonschema") or "check-jsonschema",
         "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_workflow_runs_lint_every_test_suite_and_the_compose_stack() -> None:
    steps = [
        step.get("run", "")
        for job in yaml.safe_load(WORKFLOW.read_text())["jobs"].values()
        for step in job["steps"]
    ]
    for target in ("make lint", "make test-unit", "make test-integration", "make test-e2e",
                   "make test-compose"):  # fmt: skip
        assert any(run.startswith(target) for run in steps), target
