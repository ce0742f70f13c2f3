"""The webhook channel: POST each recipient's rendered JSON to the campaign's URL, signed
like every Clarion webhook (with the project's channel secret; ``webhook-id`` is the message
id, the same on every retry), through the same SSRF guard. 2xx: sent; 408, 429, 5xx and
network errors: retried later (``Retry-After`` honoured); other answers and refused
destinations fail the message with the reason."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import orjson

from clarion.delivery.providers.base import OutboundMessage, SendResult
from clarion.templating import jsonbody
from clarion.webhooks import netguard, sender

RETRY_SECONDS = 30.0


def body_of(message: OutboundMessage) -> bytes:
    return orjson.dumps(jsonbody.assemble(message.section.body, message.fields))


class WebhookChannelProvider:
    name = "webhook"

    def __init__(
        self,
        secret_for: Callable[[str], str],
        allowed: Sequence[netguard.Network],
        concurrency: int = 16,
    ) -> None:
        self.secret_for = secret_for
        self.allowed = list(allowed)
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="clarion-webhook-channel")
        self._http = sender.client()

    def send(self, batch: Sequence[OutboundMessage]) -> list[SendResult]:
        secrets = {pid: self.secret_for(pid) for pid in {m.project_id for m in batch}}
        return list(self._pool.map(lambda m: self._one(m, secrets[m.project_id]), batch))

    def _one(self, message: OutboundMessage, secret: str) -> SendResult:
        section = message.section
        answer = sender.post(
            self._http, section.url, body_of(message), secret=secret,
            msg_id=message.message_id, headers=section.headers, allowed=self.allowed,
        )  # fmt: skip
        code = None if answer.status_code is None else str(answer.status_code)
        if answer.ok:
            return SendResult(message.message_id, "sent", provider_message_id=f"HTTP {code}",
                              provider=self.name, response_code=code)  # fmt: skip
        status = answer.status_code
        refused = status is None and (answer.error or "").startswith("refused")
        if refused or (status is not None and status < 500 and status not in (408, 429)):
            return SendResult(message.message_id, "failed", reason=f"webhook: {answer.error}",
                              provider=self.name, response_code=code)  # fmt: skip
        return SendResult(message.message_id, "retryable", reason=f"webhook: {answer.error}",
                          retry_after=max(RETRY_SECONDS, answer.retry_after or 0.0),
                          provider=self.name, response_code=code)  # fmt: skip

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._http.close()
