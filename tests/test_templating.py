"""Templates: Clix semantics (golden table, rendered by python-liquid and by the compiled
fast path, which must agree), save-time refusals with positions, limits against hostile
templates, render-once, URL and payload checks, the lint CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clarion.cli import app as cli
from clarion.templating import engine
from clarion.templating.analysis import TemplateProblem, analyze
from clarion.templating.message import MessagePlan, MessageRejected, plan

CTX: dict[str, Any] = {
    "trigger": {
        "order_id": "A-1001",
        "store": "Gangnam",
        "items": ["kimbap", "tteokbokki"],
        "count": 3,
        "price": 12.5,
        "tags": "a,b,c",
        "html": "<b>hi</b>",
        "spaced": "  padded  ",
        "nested": {"k": "v", "list": [1, 2]},
        "flag": False,
        "zero": 0,
        "blank_value": "",
        "key with space": "ok",
    },
    "user": {
        "id": "u-1",
        "first_name": "ann",
        "tier": "gold",
        "age": 31,
        "vip": True,
        "score": "abc",
    },
    "device": {
        "id": "d-1",
        "platform": "IOS",
        "locale": "KR",
        "language": "ko",
        "timezone": "Asia/Seoul",
    },
    "event": {},
}

GOLDEN = [
    # namespaces and lookups
    ("{{ trigger.order_id }}", "A-1001"),
    ('{{ trigger["order_id"] }}', "A-1001"),
    ('{{ trigger["key with space"] }}', "ok"),
    ("{{ trigger.nested.k }} {{ trigger.nested.list.size }}", "v 2"),
    ("{{ user.id }} {{ user.first_name }}", "u-1 ann"),
    ("{{ device.platform }}/{{ device.locale }}/{{ device.language }}/{{ device.timezone }}",
     "IOS/KR/ko/Asia/Seoul"),
    ("{{ device.id }}", "d-1"),
    ("{{ trigger.items.size }} {{ trigger.items.first }} {{ trigger.items.last }}",
     "2 kimbap tteokbokki"),
    ("{{ trigger.order_id.size }}", "6"),
    ("{{ trigger.items[1] }}", "tteokbokki"),
    # missing variables render empty
    ("[{{ trigger.absent }}]", "[]"),
    ("[{{ user.absent.deeper }}]", "[]"),
    ("[{{ event.name }}]", "[]"),
    ("[{{ trigger.items[9] }}]", "[]"),
    ("[{{ trigger.count.nope }}]", "[]"),
    # value formatting
    ("{{ trigger.count }} {{ trigger.price }} {{ trigger.flag }} {{ user.vip }}",
     "3 12.5 false true"),
    ("{{ trigger.items }}", "kimbaptteokbokki"),
    # the nine Clix filters
    ("{{ user.first_name | upcase }}", "ANN"),
    ("{{ 'HeLLo' | downcase }}", "hello"),
    ("{{ user.first_name | capitalize }}", "Ann"),
    ('{{ user.nickname | default: "friend" }}', "friend"),
    ('{{ trigger.blank_value | default: "none" }}', "none"),
    ('{{ trigger.flag | default: "x" }}', "x"),
    ('{{ trigger.flag | default: "x", allow_false: true }}', "false"),
    # default on a string (inlined by the fast path), a lookup as the default, a number
    ('{{ user.first_name | default: "friend" }}', "ann"),
    ("{{ trigger.blank_value | default: user.first_name | upcase }}", "ANN"),
    ('{{ trigger.zero | default: "none" }}', "0"),
    ('{{ trigger.items | default: "none" | join: "/" }}', "kimbap/tteokbokki"),
    ('{{ trigger.items | join: ", " }}', "kimbap, tteokbokki"),
    ('{{ trigger.tags | split: "," | join: "+" }}', "a+b+c"),
    ("{{ trigger.html | escape }}", "&lt;b&gt;hi&lt;/b&gt;"),
    ("[{{ trigger.spaced | strip }}]", "[padded]"),
    ('{{ trigger.order_id | replace: "A-", "#" }}', "#1001"),
    # standard Liquid filters
    ('{{ trigger.count | plus: 2 }} {{ trigger.price | times: 2 }}', "5 25.0"),
    ('{{ "long title here" | truncate: 9 }}', "long t..."),
    ('{{ trigger.order_id | append: "!" | prepend: "#" }}', "#A-1001!"),
    ("{{ trigger.items | size }}", "2"),
    ('{{ trigger.items | first | upcase }}', "KIMBAP"),
    ("{{ trigger.price | round }}", "12"),
    ('{{ "a b" | url_encode }}', "a+b"),
    # conditions
    ("{% if user.vip %}VIP{% else %}regular{% endif %}", "VIP"),
    ("{% if user.tier == 'gold' %}g{% elsif user.tier == 'silver' %}s{% else %}o{% endif %}",
     "g"),
    ("{% if user.age >= 30 and user.age < 40 %}30s{% endif %}", "30s"),
    ("{% if user.age > 40 or user.vip %}y{% endif %}", "y"),
    ("{% if not user.vip %}n{% else %}v{% endif %}", "v"),
    ("{% if trigger.count != 3 %}x{% else %}eq{% endif %}", "eq"),
    ("{% if trigger.count <= 3 %}le{% endif %}", "le"),
    ('{% if trigger.items contains "kimbap" %}has{% endif %}', "has"),
    ("{% if trigger.absent %}x{% else %}missing is false{% endif %}", "missing is false"),
    ("{% unless user.vip %}no{% else %}yes{% endunless %}", "yes"),
    ("{% if trigger.items.size > 1 %}many{% endif %}", "many"),
    ("{% if trigger.zero == 0 %}zero{% endif %}", "zero"),
    # an invalid condition is false
    ("{% if user.score > 3 %}x{% else %}invalid is false{% endif %}", "invalid is false"),
    ('{% if trigger.count contains "a" %}x{% else %}f{% endif %}', "f"),
    ("{% if user.score > 3 %}x{% elsif user.vip %}second{% endif %}", "second"),
    # loops (python-liquid path only)
    ("{% for item in trigger.items %}{{ forloop.index }}.{{ item }} {% endfor %}",
     "1.kimbap 2.tteokbokki "),
    ("{% for i in (1..3) %}{{ i }}{% endfor %}", "123"),
    # whitespace control and blank blocks
    ("a {%- if user.vip -%} b {%- endif -%} c", "abc"),
    ("{% if user.vip %}   {% endif %}x", "x"),
    # the seed's examples
    ("New pickup order at {{ trigger.store }}", "New pickup order at Gangnam"),
    ("myshop://staff/orders/{{ trigger.order_id }}", "myshop://staff/orders/A-1001"),
]  # fmt: skip


@pytest.mark.parametrize(("source", "expected"), GOLDEN)
def test_golden_table_both_ways(source: str, expected: str) -> None:
    compiled = engine.parse(source)
    assert engine.render(compiled, CTX, fast=False) == expected
    assert engine.render(compiled, CTX) == expected


def test_the_fast_path_serves_the_common_forms_and_only_those() -> None:
    fast = [s for s, _ in GOLDEN if engine.parse(s).fast is not None]
    slow = [s for s, _ in GOLDEN if engine.parse(s).fast is None]
    assert "{{ trigger.order_id }}" in fast
    assert "{% if user.vip %}VIP{% else %}regular{% endif %}" in fast
    assert all("{% for" in s or "forloop" in s for s in slow), slow
    assert len(fast) > 0.8 * len(GOLDEN)


@pytest.mark.parametrize(
    ("source", "line", "column", "words"),
    [
        ("Hi {{ user.name", 1, 4, "expected '}}'"),
        ("Hi\n  {% if trigger.x %}never closed", 2, 33, "{% endif %}"),
        ("{% if trigger.a %}{% for x in trigger.b %}{% endif %}{% endfor %}", 1, 46,
         "unexpected tag 'endif'"),
        ("{{ trigger.a }} }}", 1, 17, "'}}' has no matching '{{'"),
        ("text %} more", 1, 6, "'%}' has no matching '{%'"),
        ("x\n{{ trigger.a | upcasex }}", 2, 16, "unknown filter 'upcasex'"),
        ("{{ customer.name }}", 1, 4, "unknown variable 'customer'"),
        ("{% iff x %}", 1, 4, "unexpected tag 'iff'"),
    ],
)  # fmt: skip
def test_save_time_refusals_name_line_and_column(
    source: str, line: int, column: int, words: str
) -> None:
    with pytest.raises(TemplateProblem) as caught:
        analyze("message.body", source)
    problem = caught.value
    assert (problem.field, problem.line, problem.column) == ("message.body", line, column)
    assert words in problem.message


def test_analysis_lists_trigger_keys_and_warns() -> None:
    result = analyze(
        "message.title",
        '{{ trigger.order_id }} for {{ user.name | default: "you" }} '
        '{% if trigger.rush %}!{% endif %}{{ trigger["store name"] | default: "-" }}',
        must_not_be_empty=True,
    )
    assert result.trigger_keys == ["order_id", "rush", "store name"]
    assert result.namespaces == ["trigger", "user"]
    assert result.warnings == [
        "message.title uses trigger.order_id without a default: renders empty when absent"
    ]
    assert not result.trigger_only
    empty = analyze("message.title", "{{ user.name }}", must_not_be_empty=True)
    assert any("renders empty" in w for w in empty.warnings)
    assert analyze("message.title", "Static", must_not_be_empty=True).warnings == []


@pytest.mark.parametrize(
    ("source", "reason"),
    [
        ("{% for a in (1..1000) %}{% for b in (1..1000) %}x{% endfor %}{% endfor %}",
         "loop iteration limit"),
        ("{% for a in (1..5000) %}{{ trigger.order_id }}{% endfor %}", "output limit"),
        ('{{ "aaaaaaaaaa" | replace: "a", "aaaaaaaaaa" | replace: "a", "aaaaaaaaaa" '
         '| replace: "a", "aaaaaaaaaa" | replace: "a", "aaaaaaaaaa" }}', "output limit"),
        ("{% if true %}" * 200 + "x" + "{% endif %}" * 200, "nesting"),
        # Slow work with no output: only the wall-clock budget stops it (about 10x over).
        ("{% for a in (1..100) %}{% for b in (1..99) %}{% assign x = '" + "ab" * 1000
         + "' | split: '' | join: '-' %}{% endfor %}{% endfor %}", "time limit"),
    ],
)  # fmt: skip
def test_hostile_templates_fail_that_render_with_a_reason(
    source: str, reason: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if reason != "time limit":  # the limit under test, not the clock of a slow machine
        monkeypatch.setattr(engine, "RENDER_TIMEOUT_S", 5.0)
    try:
        compiled = engine.parse(source)
    except Exception as exc:  # refused at parse time is fine too, if it names the limit
        assert reason in str(exc).lower()
        return
    with pytest.raises(engine.RenderError) as caught:
        engine.render(compiled, CTX)
    assert reason in str(caught.value).lower()
    assert engine.render("{{ trigger.order_id }}", CTX) == "A-1001"  # the next one is fine


def test_render_time_limit_is_enforced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "RENDER_TIMEOUT_S", 0.0)
    with pytest.raises(engine.RenderError, match="time limit"):
        engine.render("{% for i in (1..3) %}{{ i }}{% endfor %}", CTX)


def _message(**fields: str) -> Any:
    class Message:
        title = fields.get("title", "t")
        body = fields.get("body", "")
        image_url = fields.get("image_url", "")
        landing_url = fields.get("landing_url", "")

    return Message()


def test_render_once_for_trigger_only_fields_and_per_user_otherwise() -> None:
    checked: MessagePlan = plan(_message(
        title="Order {{ trigger.order_id }}", body="Hi {{ user.first_name }}",
        landing_url="https://shop.example/o/{{ trigger.order_id }}",
    ))  # fmt: skip
    renderer = checked.for_trigger(CTX["trigger"], ())
    assert renderer.shared["title"] == "Order A-1001" and "body" not in renderer.shared
    first = renderer.render({**CTX, "user": {"first_name": "Ann"}})
    second = renderer.render({**CTX, "user": {"first_name": "Bo"}})
    assert first["body"] == "Hi Ann" and second["body"] == "Hi Bo"
    assert first["title"] == second["title"] == "Order A-1001"
    assert renderer.renders == 2  # the body twice; the title and URL once, up front

    static = plan(_message(title="Static", body="{{ trigger.store }}")).for_trigger(
        CTX["trigger"], ()
    )
    assert not static.personalised and static.render() == {
        "title": "Static", "body": "Gangnam", "image_url": "", "landing_url": ""
    }  # fmt: skip


@pytest.mark.parametrize(
    ("url", "schemes", "problem"),
    [
        ("https://shop.example/a?b=1", (), None),
        ("myshop://orders/1", ("myshop",), None),
        ("", (), None),
        ("myshop://orders/1", (), "scheme 'myshop' is not allowed"),
        ("javascript:alert(1)", ("myshop",), "scheme 'javascript' is not allowed"),
        ("http://shop.example", (), "scheme 'http' is not allowed"),
        ("https://", (), "has no host"),
        ("/relative/path", (), "has no scheme"),
        ("https://shop.example/{{ x }}", (), "not a well-formed URL"),
        ("https://shop.example/a b", (), "not a well-formed URL"),
    ],
)  # fmt: skip
def test_url_fields_are_checked_after_rendering(
    url: str, schemes: tuple[str, ...], problem: str | None
) -> None:
    renderer = plan(_message(landing_url="{{ trigger.url }}")).for_trigger({"url": url}, schemes)
    if problem is None:
        assert renderer.render(CTX)["landing_url"] == url
        return
    with pytest.raises(MessageRejected) as caught:
        renderer.render(CTX)
    assert caught.value.code == "invalid_url" and problem in str(caught.value)


def test_a_push_over_4096_bytes_is_refused() -> None:
    renderer = plan(_message(body="{{ trigger.long }}")).for_trigger({"long": "é" * 2100}, ())
    with pytest.raises(MessageRejected) as caught:
        renderer.render(CTX)
    assert caught.value.code == "payload_too_large" and "the limit is 4,096" in str(caught.value)


def test_a_failing_trigger_only_field_fails_every_message_once() -> None:
    renderer = plan(_message(title="{{ trigger.n | divided_by: 0 }}")).for_trigger({"n": 1}, ())
    for _ in range(2):
        with pytest.raises(MessageRejected, match="title: divided_by"):
            renderer.render(CTX)


def test_lint_cli(tmp_path: Path) -> None:
    campaign = tmp_path / "c.yaml"
    campaign.write_text(
        'name: x\nmessage:\n  title: "Hi {{ user.name }"\n  body: |\n    line one\n'
        '    {% if trigger.x %}never closed\n  landing_url: "javascript:alert(1)"\n',
        "utf-8",
    )
    template = tmp_path / "t.liquid"
    template.write_text("Hello {{ trigger.name }}\n{{ foo }}\n", "utf-8")
    clean = tmp_path / "ok.liquid"
    clean.write_text('Hi {{ user.name | default: "there" }}', "utf-8")
    warned = tmp_path / "warned.liquid"
    warned.write_text("Hi\n  {{ trigger.name }}", "utf-8")
    runner = CliRunner()

    run = runner.invoke(cli, ["template", "lint", str(campaign), str(template)])
    assert run.exit_code == 1, run.output
    assert f"{campaign}:3:14: error: message.title: expected '}}}}'" in run.output
    assert f"{campaign}:7:5: error: message.body: {{% if %}} is never closed" in run.output
    assert f"{campaign}:7:17: error: message.landing_url: scheme 'javascript'" in run.output
    assert f"{template}:2:4: error: unknown variable 'foo'" in run.output
    assert "2 file(s): 4 error(s), 0 warning(s)" in run.output

    run = runner.invoke(cli, ["template", "lint", "--json", str(template), str(warned)])
    findings = json.loads(run.output)
    assert run.exit_code == 1
    assert [(f["line"], f["column"], f["severity"], f["code"]) for f in findings] == [
        (2, 4, "error", "invalid_template"), (1, 1, "warning", "template_warning")
    ]  # fmt: skip
    run = runner.invoke(cli, ["template", "lint", str(warned)])
    assert run.exit_code == 0 and "warning: uses trigger.name without a default" in run.output

    assert runner.invoke(cli, ["template", "lint", str(clean)]).exit_code == 0
    assert runner.invoke(cli, ["template", "lint", str(tmp_path / "nope")]).exit_code == 2
    assert runner.invoke(cli, ["template", "lint"]).exit_code == 2
