"""A local SMTP server (aiosmtpd) that keeps every mail it receives, for notification tests."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Sink:
    """Receives mails over real SMTP; `messages` holds them parsed, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # aiosmtpd calls it by this name
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.messages


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def smtp_sink(login: tuple[str, str] | None = None) -> Iterator[tuple[Sink, int]]:
    """A running sink and its port; with `login`, the server requires that user and password."""
    sink = Sink()

    def authenticate(server, session, envelope, mechanism, data) -> AuthResult:
        if (
            isinstance(data, LoginPassword)
            and (data.login.decode(), data.password.decode()) == login
        ):
            sink.logins.append(data.login.decode())
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    port = free_port()
    options = {"authenticator": authenticate, "auth_required": True} if login else {}
    controller = Controller(
        sink, hostname="127.0.0.1", port=port, auth_require_tls=False, **options
    )
    controller.start()
    try:
        yield sink, port
    finally:
        controller.stop()
