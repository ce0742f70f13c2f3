"""Template rendering speed, per core, against a plain f-string floor measured in the same run.

    python bench/render.py [--seconds 1.0]

Three templates (a push title):
  (a) trigger-only: renders once per trigger; each further message costs the copy and the
      URL and payload checks;
  (b) personalised with user.* and a default filter;
  (c) (b) with an if/else.
For each: template renders/s through Clarion's engine (the compiled fast path), through plain
python-liquid (for reference), and the same text built by an f-string (the floor); then whole
messages/s (title and body rendered, URLs and payload size checked). Target: personalised
rendering >= 50,000/s per core, or within 5x of the floor, whichever is lower.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from clarion.templating import engine
from clarion.templating.message import plan

TRIGGER = {"order_id": "A-1001", "store": "Gangnam", "item_count": 3}
USERS = [
    {"id": f"u-{i}", **({"first_name": f"Name{i}"} if i % 4 else {}), "vip": i % 3 == 0}
    for i in range(1000)
]
DEVICE = {"id": "d", "platform": "IOS", "locale": "KR", "language": "ko", "timezone": "UTC"}
CONTEXTS = [{"trigger": TRIGGER, "user": u, "device": DEVICE, "event": {}} for u in USERS]

A = "New pickup order at {{ trigger.store }}: #{{ trigger.order_id }}"
B = "Hi {{ user.first_name | default: 'there' }}, your order {{ trigger.order_id }} is ready"
C = (
    "{% if user.vip %}Welcome back, {{ user.first_name | default: 'friend' }}!"
    "{% else %}Hi {{ user.first_name | default: 'there' }},{% endif %}"
    " your order {{ trigger.order_id }} is ready"
)


def floor_a(c: dict[str, Any]) -> str:
    t = c["trigger"]
    return f"New pickup order at {t.get('store', '')}: #{t.get('order_id', '')}"


def floor_b(c: dict[str, Any]) -> str:
    return (
        f"Hi {c['user'].get('first_name') or 'there'}, "
        f"your order {c['trigger'].get('order_id', '')} is ready"
    )


def floor_c(c: dict[str, Any]) -> str:
    u = c["user"]
    head = (
        f"Welcome back, {u.get('first_name') or 'friend'}!"
        if u.get("vip")
        else f"Hi {u.get('first_name') or 'there'},"
    )
    return f"{head} your order {c['trigger'].get('order_id', '')} is ready"


def rate(work: Callable[[dict[str, Any]], object], seconds: float) -> float:
    """Calls per second over about ``seconds``, cycling through the contexts."""
    n = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for context in CONTEXTS:
            work(context)
        n += len(CONTEXTS)
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=1.0)
    args = parser.parse_args()
    print("renders/s per core (one process); floor = the same text from an f-string\n")
    print(f"{'template':<34}{'clarion':>12}{'liquid':>12}{'floor':>12}{'floor/clarion':>15}")
    worst = float("inf")
    for label, source, floor in (
        ("(a) trigger-only, render-once", A, floor_a),
        ("(b) user.* + default", B, floor_b),
        ("(c) (b) + if/else", C, floor_c),
    ):
        compiled = engine.parse(source)
        assert compiled.fast is not None, "the benchmark's templates take the fast path"
        for context in CONTEXTS[:50]:  # the same text, or the comparison means nothing
            assert engine.render(compiled, context) == floor(context), source
        if compiled.trigger_only:  # render once per trigger, reuse for every message
            renderer = plan(_Message(source, "")).for_trigger(TRIGGER, ())
            clarion = rate(lambda c, r=renderer: r.render(None), args.seconds)
        else:
            clarion = rate(lambda c, t=compiled: engine.render(t, c), args.seconds)
        liquid = rate(lambda c, t=compiled: engine.render(t, c, fast=False), args.seconds / 2)
        base = rate(floor, args.seconds)
        if not compiled.trigger_only:
            worst = min(worst, clarion)
        print(f"{label:<34}{clarion:>12,.0f}{liquid:>12,.0f}{base:>12,.0f}{base / clarion:>14.1f}x")

    messages = plan(_Message(C, B, "myshop://orders/{{ trigger.order_id }}"))
    renderer = messages.for_trigger(TRIGGER, ("myshop",))
    whole = rate(lambda c: renderer.render(c), args.seconds)
    print(
        f"\nwhole messages (title (c), body (b), landing URL render-once; URL and payload "
        f"checks): {whole:,.0f}/s per core"
    )
    print(f"personalised rendering: {worst:,.0f}/s per core (target >= 50,000)")


class _Message:
    def __init__(self, title: str, body: str, landing_url: str = "") -> None:
        self.title = title
        self.body = body
        self.image_url = ""
        self.landing_url = landing_url


if __name__ == "__main__":
    main()
