"""The e-mail channel: SMTP through aiosmtplib, with STARTTLS or TLS, to the project's relay
(``PUT /api/v1/providers/smtp``). One connection per project and batch, messages sent over it
in turn. The relay's answers: 2xx sent; 4xx (and a dropped connection) retry later; 5xx about
a recipient fail that message; a refused login fails the batch with the relay's reason."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable, Mapping, Sequence
from email.message import EmailMessage
from email.utils import formataddr, formatdate
from pathlib import Path
from typing import Any

import aiosmtplib

from clarion.delivery.providers.base import OutboundMessage, SendResult
from clarion.emails import one_line

RETRY_SECONDS = 60.0
NOT_CONFIGURED = "no SMTP relay for this project: set one with PUT /api/v1/providers/smtp"


def build(message: OutboundMessage, smtp: Mapping[str, Any]) -> EmailMessage:
    """The MIME message: text and HTML as alternatives (or whichever is set)."""
    fields = message.fields
    mail = EmailMessage()
    mail["From"] = formataddr((smtp.get("from_name") or "", smtp["from_address"]))
    mail["To"] = message.to
    mail["Subject"] = one_line(fields.get("subject", ""))
    mail["Date"] = formatdate(usegmt=True)
    domain = str(smtp["from_address"]).rsplit("@", 1)[-1]
    mail["Message-ID"] = f"<{message.message_id}@{domain}>"
    mail["X-Clarion-Message-ID"] = message.message_id
    text, html = fields.get("text", ""), fields.get("html", "")
    if text:
        mail.set_content(text)
        if html:
            mail.add_alternative(html, subtype="html")
    else:
        mail.set_content(html, subtype="html")
    return mail


class EmailProvider:
    name = "smtp"

    def __init__(
        self,
        secrets: Callable[[str], Mapping[str, Any] | None],
        ca_file: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.secrets = secrets
        self.ca_file = ca_file
        self.timeout = timeout

    def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        by_project: dict[str, list[OutboundMessage]] = {}
        for message in batch:
            by_project.setdefault(message.project_id, []).append(message)
        results: dict[str, SendResult] = {}
        for project_id, messages in by_project.items():
            smtp = self.secrets(project_id)
            if smtp is None:
                answers = [self._result(m, "failed", reason=NOT_CONFIGURED) for m in messages]
            else:
                answers = asyncio.run(self._send(smtp, messages))
            results.update((r.message_id, r) for r in answers)
        return [results[m.message_id] for m in batch]

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.ca_file is not None:
            context.load_verify_locations(cafile=str(self.ca_file))
        return context

    async def _send(
        self, smtp: Mapping[str, Any], messages: Sequence[OutboundMessage]
    ) -> list[SendResult]:
        security = smtp.get("security", "starttls")
        client = aiosmtplib.SMTP(
            hostname=smtp["host"],
            port=smtp["port"],
            use_tls=security == "tls",
            start_tls=security == "starttls",
            tls_context=self._tls() if security != "none" else None,
            timeout=self.timeout,
        )
        try:
            await client.connect()
            if smtp.get("username"):
                await client.login(smtp["username"], smtp.get("password") or "")
        except aiosmtplib.SMTPAuthenticationError as exc:
            reason = f"SMTP login refused: {exc.code} {one_line(exc.message)}"
            return [self._result(m, "failed", reason=reason, code=str(exc.code))
                    for m in messages]  # fmt: skip
        except (aiosmtplib.SMTPException, OSError) as exc:
            reason = f"SMTP relay unreachable: {type(exc).__name__}: {one_line(str(exc))}"
            return [self._result(m, "retryable", reason=reason, retry=RETRY_SECONDS)
                    for m in messages]  # fmt: skip
        results: list[SendResult] = []
        try:
            for index, message in enumerate(messages):
                try:
                    answer = await client.send_message(build(message, smtp))
                except aiosmtplib.SMTPRecipientsRefused as exc:
                    refused = exc.recipients[0]
                    results.append(self._refused(message, refused.code, refused.message))
                except aiosmtplib.SMTPResponseException as exc:
                    results.append(self._refused(message, exc.code, exc.message))
                except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError,
                        OSError) as exc:  # fmt: skip
                    reason = f"SMTP connection lost: {type(exc).__name__}"
                    results += [self._result(m, "retryable", reason=reason, retry=RETRY_SECONDS)
                                for m in messages[index:]]  # fmt: skip
                    break
                else:
                    text = one_line(answer[1])
                    results.append(SendResult(message.message_id, "sent",
                                              provider_message_id=text[:200] or "250",
                                              provider=self.name, response_code="250"))  # fmt: skip
        finally:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
        return results

    def _refused(self, message: OutboundMessage, code: int, text: str) -> SendResult:
        reason = f"SMTP {code} {one_line(text)}"
        if 400 <= code < 500:
            return self._result(message, "retryable", reason=reason, retry=RETRY_SECONDS,
                                code=str(code))  # fmt: skip
        return self._result(message, "failed", reason=reason, code=str(code))

    def _result(
        self,
        message: OutboundMessage,
        outcome: Any,
        *,
        reason: str,
        retry: float | None = None,
        code: str | None = None,
    ) -> SendResult:
        return SendResult(message.message_id, outcome, reason=reason, retry_after=retry,
                          provider=self.name, response_code=code)  # fmt: skip
