"""The service's request timeout: 504 before the response starts, nothing kept afterwards."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import weakref
from typing import Any

from serving.middleware import RequestTimeout

REQUEST_STATE: contextvars.ContextVar[Any] = contextvars.ContextVar("request_state")


class Payload:
    """Something a request keeps in its context, as tracing keeps its span."""


def app_that(delay_before_s: float = 0.0, delay_after_s: float = 0.0):
    async def app(scope, receive, send) -> None:
        await asyncio.sleep(delay_before_s)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(delay_after_s)
        await send({"type": "http.response.body", "body": b"done"})

    return app


def traced(app, kept: list[weakref.ref]):
    """An outer middleware that keeps state in the request's context, as tracing does."""

    async def tracing(scope, receive, send) -> None:
        payload = Payload()
        kept.append(weakref.ref(payload))
        REQUEST_STATE.set(payload)
        await app(scope, receive, send)

    return tracing


async def request(app) -> tuple[int, bytes]:
    """One GET through the ASGI app on the running loop: (status, body)."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app({"type": "http", "method": "GET", "path": "/", "headers": []}, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


def test_a_response_not_started_in_time_gets_504_naming_the_timeout() -> None:
    status, body = asyncio.run(request(RequestTimeout(app_that(delay_before_s=1), timeout=0.05)))

    assert status == 504
    assert "within 0.05 s" in json.loads(body)["error"]


def test_a_response_that_started_in_time_may_take_longer_to_finish() -> None:
    app = RequestTimeout(app_that(delay_after_s=0.2), timeout=0.05)

    assert asyncio.run(request(app)) == (200, b"done")


def test_nothing_of_a_finished_request_stays_alive_until_the_timeout() -> None:
    kept: list[weakref.ref] = []
    app = traced(RequestTimeout(app_that(), timeout=3600), kept)

    async def five_requests_then_collect() -> list[Any]:
        for _ in range(5):  # each in a task of its own, as the server runs them
            assert await asyncio.create_task(request(app)) == (200, b"done")
        await asyncio.sleep(0)  # the last task's done-callbacks
        gc.collect()
        return [ref() for ref in kept]  # while the loop, and any timer on it, still lives

    assert asyncio.run(five_requests_then_collect()) == [None] * 5


def test_install_makes_bentoml_build_its_apps_with_it() -> None:
    from bentoml._internal.server.http import traffic

    RequestTimeout.install()

    assert traffic.TimeoutMiddleware is RequestTimeout
