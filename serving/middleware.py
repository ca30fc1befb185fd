"""The service's ASGI middleware and its own error answers.

`RequestTimeout` replaces BentoML 1.4's TimeoutMiddleware, which never cancels the
timer it starts for each request: the timer keeps the request's context (its trace span
and everything else in it) alive for the whole timeout. At 1,000 requests a second with
the 60 s timeout that is 60,000 live contexts, which every full garbage collection walks:
measured here, p99 latency grew from 45 ms to 100-350 ms within a minute of load.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

import pydantic_core
from starlette.responses import JSONResponse, Response

# A framework answer longer than this is not worth quoting in the envelope.
QUOTED_CHARS = 200


def error(
    status: int,
    message: str,
    rule: str | None = None,
    errors: Sequence[dict[str, Any]] = (),
    error_count: int = 0,
) -> JSONResponse:
    """The service's one error answer (`ErrorBody`); `rule` defaults to the status's name."""
    return JSONResponse(
        {"error": message, "rule": rule or status_rule(status), "errors": list(errors),
         "error_count": error_count},
        status_code=status,
    )  # fmt: skip


def status_rule(status: int) -> str:
    """`not_found`, `method_not_allowed`, … : the status's standard phrase."""
    return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")


def json_response(payload: Any) -> Response:
    """Serialised in Rust, skipping BentoML's re-validation of our own output."""
    return Response(pydantic_core.to_json(payload), media_type="application/json")


class RequestLimits:
    """ASGI middleware: oversize heads get 431, oversize bodies 413, empty POST bodies 400,
    POST bodies that are not JSON 415.

    BentoML 1.4 gives no way to pass uvicorn a header limit (and uvicorn's httptools parser
    has none), so the head is measured here, once the server has read it.
    """

    def __init__(self, app: Any, max_body_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head_bytes = len(scope.get("raw_path") or b"") + len(scope.get("query_string", b""))
        head_bytes += sum(len(name) + len(value) for name, value in scope["headers"])
        if head_bytes > self.max_header_bytes:
            message = f"request headers are larger than {self.max_header_bytes} bytes"
            await error(431, message)(scope, receive, send)
            return
        if scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        media_type = headers.get(b"content-type", b"application/json").split(b";")[0].strip()
        if media_type.lower() != b"application/json":
            await error(415, "send the body as application/json")(scope, receive, send)
            return
        too_large = error(413, f"request body is larger than {self.max_body_bytes} bytes")
        empty = error(400, EMPTY_BODY, "empty_body")
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await error(400, "Content-Length must be a whole number")(scope, receive, send)
            elif int(length) > self.max_body_bytes:
                await too_large(scope, receive, send)
            elif int(length) == 0:
                await empty(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        # Chunked upload: read it here, within the limit, and hand it on.
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body_bytes:
                await too_large(scope, receive, send)
                return
        if not body:
            await empty(scope, receive, send)
            return

        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if delivered:  # later calls wait for the disconnect, as the server's would
                return await receive()
            delivered = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)


EMPTY_BODY = "empty body: send a JSON object (one record) or array (a batch) as application/json"


class ErrorEnvelope:
    """ASGI middleware: every error the framework answers itself (unknown path, wrong method,
    not ready, its own 500) is rewritten into the service's envelope; ours pass unchanged."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def enveloping_send(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start" and message["status"] >= 400:
                start = message
                return
            if start is None or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            body = enveloped(start["status"], b"".join(chunks), scope)
            headers = [(name, value) for name, value in start["headers"]
                       if name.lower() not in (b"content-length", b"content-type")]  # fmt: skip
            headers += [(b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode())]  # fmt: skip
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, enveloping_send)


ENVELOPE_KEYS = {"error", "rule", "errors", "error_count"}


def enveloped(status: int, body: bytes, scope: dict[str, Any]) -> bytes:
    """`body` if it is the envelope already, else the envelope saying what it said."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = body.decode(errors="replace")
    if isinstance(payload, dict) and payload.keys() == ENVELOPE_KEYS:
        return body
    if status == 404:
        message = f"no such path: {scope['path'][:QUOTED_CHARS]} (the API is described at /)"
    elif status == 405:
        message = f"{scope['method']} is not allowed on {scope['path'][:QUOTED_CHARS]}"
    else:
        said = payload.get("error") or payload.get("detail") if isinstance(payload, dict) else None
        said = said if isinstance(said, str) else str(payload) if payload else ""
        message = said[:QUOTED_CHARS] or HTTPStatus(status).phrase
    return error(status, message).body


class RequestTimeout:
    """ASGI middleware: a request whose response has not started within `timeout` s gets 504.

    Takes the place of BentoML's TimeoutMiddleware (same arguments, see `install`); its
    deadline is cancelled as soon as the response starts, so nothing outlives the request.
    """

    def __init__(self, app: Any, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False
        try:
            async with asyncio.timeout(self.timeout) as deadline:

                async def send_and_stop_the_clock(message: dict[str, Any]) -> None:
                    nonlocal started
                    if not started:
                        started = True
                        deadline.reschedule(None)
                    await send(message)

                await self.app(scope, receive, send_and_stop_the_clock)
        except TimeoutError:
            if started or not deadline.expired():
                raise  # the handler's own timeout, not ours
            message = f"no answer within {self.timeout:g} s; try again or send a smaller batch"
            await error(504, message)(scope, receive, send)

    @classmethod
    def install(cls) -> None:
        """Make BentoML build its apps with this class; call before the service is served."""
        from bentoml._internal.server.http import traffic

        if not hasattr(traffic, "TimeoutMiddleware"):
            raise RuntimeError("BentoML moved TimeoutMiddleware; check whether the fix is needed")
        traffic.TimeoutMiddleware = cls
