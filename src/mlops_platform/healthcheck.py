"""Container healthchecks that cost milliseconds: the standard library only.

    python -m mlops_platform.healthcheck URL [COMPONENT]

Exits 0 when URL answers 2xx and, with COMPONENT, when the JSON answer reports that
component healthy (Airflow's `/api/v2/monitor/health`); 1 otherwise, saying why.
"""

from __future__ import annotations

import json
import sys
import urllib.request


def check(url: str, component: str | None = None, timeout: float = 4) -> str | None:
    """None when healthy, else the reason."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read()
    except OSError as error:
        return f"{url}: {error}"
    if component is None:
        return None
    status = (json.loads(body).get(component) or {}).get("status")
    return None if status == "healthy" else f"{component} is {status}"


def main(arguments: list[str]) -> int:
    problem = check(*arguments[:2])
    if problem:
        print(problem, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
