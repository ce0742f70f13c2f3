"""A campaign's message as a plan: every template field parsed once, analysed once, and
rendered per trigger (fields that read only ``trigger.*``) or per recipient (the rest).

The pipeline, the dry run and the preview all render through ``TriggerMessages``, so a
message is either rendered whole, with well-formed URLs and a payload that fits, or fails
with one reason; it is never sent half-rendered.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial
from typing import Any, Protocol

import orjson
from liquid.exceptions import LiquidError

from clarion.templating import engine, urls
from clarion.templating.analysis import FieldAnalysis, TemplateProblem, analyze

FIELDS = ("title", "body", "image_url", "landing_url")  # a push's (and an in-app message's)
URL_FIELDS = ("image_url", "landing_url")
PAYLOAD_LIMIT = 4096  # bytes: FCM's cap on a whole push (APNs allows 4 KB too)


class Message(Protocol):
    title: str
    body: str
    image_url: str
    landing_url: str


class MessageRejected(engine.RenderError):
    """A message that may not be sent; ``code`` says why (the reason's prefix)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code

    @property
    def reason(self) -> str:
        return f"{self.code}: {self}"


@dataclass(frozen=True)
class Field:
    """One template field of a channel's message."""

    name: str  # the key it renders to
    source: str
    label: str  # where it lives in the campaign, for error messages: message.title, ...
    required: bool = False  # must not render empty
    url: bool = False  # a URL: well formed, with an allowed scheme
    html: bool = False  # HTML: values are escaped


@dataclass(frozen=True)
class MessagePlan:
    compiled: tuple[tuple[str, engine.Compiled | str], ...]  # (field, template or error)
    analyses: tuple[FieldAnalysis, ...]
    url_fields: tuple[str, ...] = URL_FIELDS
    push: bool = True  # a push: the rendered payload must fit PAYLOAD_LIMIT

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.compiled)

    @property
    def trigger_keys(self) -> list[str]:
        """The ``trigger.*`` keys the templates use, in first-use order."""
        return list(dict.fromkeys(k for a in self.analyses for k in a.trigger_keys))

    @property
    def warnings(self) -> list[str]:
        return [w for a in self.analyses for w in a.warnings]

    def for_trigger(
        self, properties: Mapping[str, Any], schemes: Collection[str]
    ) -> TriggerMessages:
        return TriggerMessages(self, properties, schemes)


def push_fields(message: Message, prefix: str = "message") -> tuple[Field, ...]:
    return tuple(
        Field(f, getattr(message, f), f"{prefix}.{f}", required=f == "title", url=f in URL_FIELDS)
        for f in FIELDS
    )


def plan(message: Message, *, strict: bool = True) -> MessagePlan:
    """A push's (or an in-app message's) plan; see ``plan_fields``."""
    return plan_fields(push_fields(message), strict=strict)


@lru_cache(maxsize=1024)
def plan_fields(
    fields: tuple[Field, ...], *, strict: bool = True, push: bool = True
) -> MessagePlan:
    """Parse and analyse every field. ``strict`` (saving): raises analysis.TemplateProblem.
    Otherwise (sending a stored version) a field that does not pass fails every message
    that uses it, with the reason."""
    analyses = []
    compiled: list[tuple[str, engine.Compiled | str]] = []
    for field in fields:
        try:
            analyses.append(analyze(field.label, field.source, must_not_be_empty=field.required))
            compiled.append((field.name, engine.parse(field.source, field.html)))
        except TemplateProblem as exc:
            if strict:
                raise
            compiled.append((field.name, str(exc)))
    urls_ = tuple(f.name for f in fields if f.url)
    return MessagePlan(tuple(compiled), tuple(analyses), urls_, push)


class TriggerMessages:
    """Renders one trigger's messages: fields that read only ``trigger.*`` (or nothing)
    once, the others per recipient."""

    def __init__(
        self, plan: MessagePlan, properties: Mapping[str, Any], schemes: Collection[str]
    ) -> None:
        self.names = plan.names
        self.url_fields = plan.url_fields
        self.push = plan.push
        self.properties = properties
        self.schemes = frozenset(schemes)
        self.shared: dict[str, str] = {}
        self.shared_error: MessageRejected | None = None
        self.personal: list[tuple[str, engine.Compiled]] = []
        context = {"trigger": properties}
        for name, compiled in plan.compiled:
            if isinstance(compiled, str):
                self.shared_error = self.shared_error or MessageRejected("render_error", compiled)
                continue
            if not compiled.trigger_only:
                self.personal.append((name, compiled))
                continue
            try:
                self.shared[name] = engine.render(compiled, context)
            except engine.RenderError as exc:
                self.shared_error = self.shared_error or MessageRejected(
                    "render_error", f"{name}: {exc}"
                )
        self.renders = 0  # per-recipient field renders, for tests and the benchmark
        # Each field in order: its per-recipient render function (the compiled form where
        # there is one, called directly: the per-message path), else its value.
        personal = dict(self.personal)
        self._order = tuple(
            (name, _renderer(personal[name]) if name in personal else None,
             self.shared.get(name, ""))
            for name in self.names
        )  # fmt: skip
        self._personal_urls = tuple(n for n in self.url_fields if n not in self.shared)
        self._whole: dict[str, str] | MessageRejected | None = None
        for name in self.url_fields:  # shared URLs: checked once here
            problem = urls.problem(self.shared.get(name, ""), self.schemes)
            if problem is not None and self.shared_error is None:
                self.shared_error = MessageRejected("invalid_url", f"{name}: {problem}")

    def render(self, context: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The fields for one recipient (``context``: trigger, user, device), checked.
        Raises MessageRejected: render_error, invalid_url or payload_too_large."""
        if not self.personal:  # the same message for everyone: render and check once
            if self._whole is None:
                try:
                    fields = self.render_fields(context)
                    self.check(fields)
                    self._whole = fields
                except MessageRejected as exc:
                    self._whole = exc
            if isinstance(self._whole, MessageRejected):
                raise self._whole
            return dict(self._whole)
        fields = self.render_fields(context)
        self.check(fields, personal_only=True)
        return fields

    def render_fields(self, context: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The fields, not yet checked; raises MessageRejected (render_error)."""
        if self.shared_error is not None:
            raise self.shared_error
        if self.personal:
            assert context is not None, "personalised fields need the recipient's context"
        fields = {}
        scope = context or {}
        for name, render, value in self._order:
            if render is not None:
                self.renders += 1
                try:
                    value = render(scope)
                except engine.RenderError as exc:
                    raise MessageRejected("render_error", f"{name}: {exc}") from None
                except LiquidError as exc:  # from a compiled form
                    raise MessageRejected("render_error", f"{name}: {engine.reason(exc)}") from None
            fields[name] = value
        return fields

    def check(self, fields: Mapping[str, str], *, personal_only: bool = False) -> None:
        """URLs well formed with an allowed scheme, and a push that fits. ``personal_only``:
        URL fields rendered once per trigger were checked already."""
        for name in self._personal_urls if personal_only else self.url_fields:
            problem = urls.problem(fields.get(name, ""), self.schemes)
            if problem is not None:
                raise MessageRejected("invalid_url", f"{name}: {problem}")
        if not self.push:
            return
        # Exact size only when it could matter: JSON escaping (twice: the clix entry is a
        # string) costs at most 7 bytes a character, and each field appears at most twice.
        if 14 * sum(map(len, fields.values())) + 512 <= PAYLOAD_LIMIT:
            return
        size = payload_size(fields)
        if size > PAYLOAD_LIMIT:
            raise MessageRejected(
                "payload_too_large",
                f"the rendered push is {size:,} bytes; the limit is {PAYLOAD_LIMIT:,}",
            )

    @property
    def personalised(self) -> bool:
        return bool(self.personal)


def _renderer(compiled: engine.Compiled) -> Callable[[Mapping[str, Any]], str]:
    """What renders a field for one recipient: its compiled form (which raises LiquidError),
    else engine.render (RenderError)."""
    if compiled.fast is not None:
        return compiled.fast
    return partial(engine.render, compiled)


def payload(fields: Mapping[str, str], message_id: str = "x" * 36) -> dict[str, Any]:
    """The push as providers carry it: the notification and the ``clix`` data entry the
    Clix SDKs read (a JSON string, as FCM data values are strings)."""
    notification = {"title": fields.get("title", ""), "body": fields.get("body", "")}
    if fields.get("image_url"):
        notification["image"] = fields["image_url"]
    clix = {
        "message_id": message_id,
        "title": fields.get("title", ""),
        "body": fields.get("body", ""),
        "image_url": fields.get("image_url") or None,
        "landing_url": fields.get("landing_url") or None,
        "user_journey_id": None,
        "user_journey_node_id": None,
    }
    return {"notification": notification, "data": {"clix": orjson.dumps(clix).decode()}}


def payload_size(fields: Mapping[str, str]) -> int:
    """Bytes of ``payload(fields)`` with a message id of 36 bytes."""
    return len(orjson.dumps(payload(fields)))
