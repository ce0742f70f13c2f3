"""A local SMTP relay on aiosmtpd, speaking real SMTP: plain, STARTTLS (required) or
implicit TLS on a self-signed certificate, with AUTH checked against one username and
password. Scripted recipients: ``bounce@...`` answers 550, ``later@...`` 451.

    with smtp.serve("starttls") as relay:
        relay.settings()   # what PUT /api/v1/providers/smtp takes
        relay.received     # [(envelope sender, recipients, email.message.EmailMessage)]
"""

from __future__ import annotations

import email
import email.policy
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.fakes import tlscert

USERNAME, PASSWORD = "clarion", "relay-password-123"


@dataclass
class FakeRelay:
    security: str
    port: int = 0
    ca_file: str = ""
    received: list[tuple[str, list[str], EmailMessage]] = field(default_factory=list)
    logins: int = 0

    def settings(self, **extra: Any) -> dict[str, Any]:
        return {"host": "127.0.0.1", "port": self.port, "security": self.security,
                "username": USERNAME, "password": PASSWORD,
                "from_address": "orders@shop.example", "from_name": "Shop", **extra}  # fmt: skip

    # -- aiosmtpd handler hooks --------------------------------------------------------------
    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:  # fmt: skip
        if address.startswith("bounce@"):
            return "550 5.1.1 No such user here"
        if address.startswith("later@"):
            return "451 4.3.0 Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return f"250 2.0.0 Ok: queued as Q{len(self.received)}"

    def authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                     data: Any) -> AuthResult:  # fmt: skip
        if isinstance(data, LoginPassword) and (data.login.decode(), data.password.decode()) == (
            USERNAME, PASSWORD,
        ):  # fmt: skip
            self.logins += 1
            return AuthResult(success=True)
        return AuthResult(success=False, handled=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(security: str = "none") -> Iterator[FakeRelay]:
    relay = FakeRelay(security, port=_free_port())
    with tempfile.TemporaryDirectory() as tmp:
        context, relay.ca_file = tlscert.server_context(Path(tmp))
        # AUTH only after STARTTLS there; implicit TLS is encrypted from the start (aiosmtpd's
        # check only knows STARTTLS), and "none" is plain by choice.
        options: dict[str, Any] = {"authenticator": relay.authenticate,
                                   "auth_require_tls": security == "starttls"}  # fmt: skip
        if security == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif security == "tls":
            options.update(ssl_context=context)
        controller = Controller(relay, hostname="127.0.0.1", port=relay.port, **options)
        controller.start()
        try:
            yield relay
        finally:
            controller.stop()
