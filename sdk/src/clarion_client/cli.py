"""``clix-trigger``: trigger a campaign, follow a trigger, and keep trigger plans honest.

    clix-trigger trigger CAMPAIGN_ID (--broadcast | --target user:ID ...) [--prop k=v ...]
                         [--plan PATH] [--dedupe-key KEY] [--wait]
    clix-trigger status TRIGGER_ID [--no-follow]
    clix-trigger plan validate [PATH] [--strict] [--json]
    clix-trigger plan init [PATH] [--campaign-id ID] [--mode M] [--prop name:type[:required][:pii]]
                           [--dynamic-key KEY] [--force]
    clix-trigger plan check [PATH] [--json]

Credentials come from CLIX_PROJECT_ID, CLIX_API_KEY and CLIX_BASE_URL. Exit status: 0 on
success, 1 when the call or the check fails, 2 on a usage error (a missing file included).
The server's ``clarion plan ...`` commands are these same commands.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from clarion_client import errors, plan
from clarion_client.client import Client
from clarion_client.config import MissingCredentialsError

USAGE, FAILED, OK = 2, 1, 0


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # exit 2 with the usage, as argparse does
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(USAGE)


def parser(prog: str = "clix-trigger") -> argparse.ArgumentParser:
    root = _Parser(prog=prog, description=__doc__.split("\n\n")[0])
    sub = root.add_subparsers(dest="command", required=True, parser_class=_Parser)

    trigger = sub.add_parser("trigger", help="trigger a campaign; prints the trigger id")
    trigger.add_argument("campaign_id")
    who = trigger.add_mutually_exclusive_group()
    who.add_argument("--broadcast", action="store_true", help="everyone the rules admit")
    who.add_argument("--target", action="append", default=[], metavar="user:ID|device:ID")
    trigger.add_argument(
        "--prop",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a trigger property; typed by --plan, else JSON if it parses",
    )
    trigger.add_argument("--plan", type=Path, help="check the properties against this plan")
    trigger.add_argument("--dedupe-key")
    trigger.add_argument("--wait", action="store_true", help="follow it until it completes")

    status = sub.add_parser("status", help="a trigger's progress, live until it completes")
    status.add_argument("trigger_id")
    status.add_argument("--no-follow", action="store_true")
    status.add_argument("--timeout", type=float, default=300.0)

    plans = sub.add_parser("plan", help="trigger plans").add_subparsers(
        dest="plan_command", required=True, parser_class=_Parser
    )
    validate = plans.add_parser("validate", help="the seed validator's verdict, and warnings")
    validate.add_argument("path", type=Path, nargs="?", default=plan.DEFAULT_PATH)
    validate.add_argument("--strict", action="store_true", help="warnings fail the plan")
    validate.add_argument("--json", action="store_true")
    init = plans.add_parser("init", help="write a plan (asks for what the flags leave out)")
    init.add_argument("path", type=Path, nargs="?", default=plan.DEFAULT_PATH)
    init.add_argument("--campaign-id")
    init.add_argument("--from-campaign", metavar="CAMPAIGN_ID",
                      help="write the plan the server makes of the campaign (its "
                           "trigger_schema, rule and template keys)")  # fmt: skip
    init.add_argument("--mode", choices=plan.MODES)
    init.add_argument("--prop", action="append", default=[],
                      metavar="NAME:TYPE[:required][:pii]")  # fmt: skip
    init.add_argument("--dynamic-key", action="append", default=[])
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    check = plans.add_parser("check", help="compare the plan with the live campaign")
    check.add_argument("path", type=Path, nargs="?", default=plan.DEFAULT_PATH)
    check.add_argument("--json", action="store_true")
    return root


def main(argv: Sequence[str] | None = None, prog: str = "clix-trigger") -> int:
    args = parser(prog).parse_args(argv)
    try:
        if args.command == "trigger":
            return _trigger(args)
        if args.command == "status":
            return _status(args)
        return {"validate": _validate, "init": _init, "check": _check}[args.plan_command](args)
    except MissingCredentialsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USAGE
    except errors.ClixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return FAILED


def _typed(raw: str, kind: Any) -> Any:
    if kind == "string" or kind == "datetime":
        return raw
    if kind == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        return raw  # the plan check names the problem
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if kind != "number" or isinstance(value, int | float) else raw


def _trigger(args: argparse.Namespace) -> int:
    checked = _load_plan(args.plan) if args.plan else None
    if checked is None and args.plan:
        return USAGE
    properties: dict[str, Any] = {}
    for item in args.prop:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"error: --prop {item!r}: write KEY=VALUE", file=sys.stderr)
            return USAGE
        kind = checked.properties.get(key, {}).get("type") if checked else None
        properties[key] = _typed(value, kind)
    with Client(plan=checked) as client:
        result = client.trigger_campaign(
            args.campaign_id, broadcast=args.broadcast or None, targets=args.target or None,
            properties=properties, dedupe_key=args.dedupe_key,
        )  # fmt: skip
        print(result.trigger_id)
        if result.duplicate:
            print("(a duplicate: the first call's trigger; nothing sent)", file=sys.stderr)
        if args.wait:
            return _follow(client, result.trigger_id, 300.0)
    return OK


def _status(args: argparse.Namespace) -> int:
    with Client() as client:
        if args.no_follow:
            status = client.get_trigger(args.trigger_id)
            print(_line(status.status, status.counts))
            return OK if status.status != "failed" else FAILED
        return _follow(client, args.trigger_id, args.timeout)


def _follow(client: Client, trigger_id: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        status = client.get_trigger(trigger_id)
        line = _line(status.status, status.counts)
        if line != last:
            print(line, flush=True)
            last = line
        if status.done:
            return OK if status.status == "completed" else FAILED
        if time.monotonic() >= deadline:
            print(f"still {status.status} after {timeout:g} s", file=sys.stderr)
            return FAILED
        time.sleep(0.5)


def _line(state: str, counts: dict[str, int]) -> str:
    shown = " ".join(f"{k}={counts.get(k, 0)}"
                     for k in ("matched", "sent", "failed", "skipped", "pending"))  # fmt: skip
    return f"{state}: {shown}"


def _load_plan(path: Path) -> plan.Plan | None:
    try:
        return plan.Plan.load(path)
    except OSError as exc:
        print(f"error: {path}: {exc.strerror or exc}", file=sys.stderr)
    except plan.PlanFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
    return None


def _validate(args: argparse.Namespace) -> int:
    try:
        data = plan.read(args.path)
    except OSError as exc:
        print(f"error: {args.path}: {exc.strerror or exc}", file=sys.stderr)
        return USAGE
    except plan.PlanFileError as exc:
        verdict = plan.Verdict(errors=[str(exc)])
    else:
        verdict = plan.validate(data)
    passed = verdict.passed(args.strict)
    if args.json:
        print(json.dumps({"path": str(args.path), **verdict.to_json(args.strict)}, indent=2))
    else:
        mark = "passed" if passed else "failed"
        print(f"{args.path}: api-trigger-plan validation {mark}")
        for problem in verdict.errors:
            print(f"- error: {problem}")
        for warning in verdict.warnings:
            print(f"- {'error' if args.strict else 'warning'}: {warning}")
    return OK if passed else FAILED


def _init(args: argparse.Namespace) -> int:
    if args.path.exists() and not args.force:
        print(f"error: {args.path} exists (--force to overwrite)", file=sys.stderr)
        return USAGE
    if args.from_campaign:
        with Client() as client:
            data = client.campaign_plan(args.from_campaign)
        if args.mode:
            data["audience"] = {"mode": args.mode}
    else:
        data = _asked_plan(args)
    if data["audience"]["mode"] == "targets":
        data["audience"]["targets"] = [{"project_user_id": "REPLACE_ME"}]
    verdict = plan.validate(data)
    args.path.parent.mkdir(parents=True, exist_ok=True)
    args.path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.path}")
    for problem in verdict.errors + verdict.warnings:
        print(f"- to fix: {problem}")
    return OK if verdict.passed() else FAILED


def _asked_plan(args: argparse.Namespace) -> dict[str, Any]:
    campaign_id = args.campaign_id or _ask("campaign id")
    mode = args.mode or _ask("audience mode (broadcast, targets, default)", "default")
    props = args.prop or [p for p in _ask("properties as name:type[:required][:pii], "
                                          "separated by spaces", "").split() if p]  # fmt: skip
    properties: dict[str, Any] = {}
    for item in props:
        name, _, rest = item.partition(":")
        parts = rest.split(":") if rest else ["string"]
        spec: dict[str, Any] = {"type": parts[0] or "string", "required": "required" in parts[1:]}
        if "pii" in parts[1:]:
            spec["pii"] = True
        properties[name] = spec
    dynamic = args.dynamic_key
    for key in dynamic:
        properties.setdefault(key, {"type": "string", "required": True})
    return {"campaign_id": campaign_id, "audience": {"mode": mode},
            "dynamic_filter_keys": dynamic, "properties": properties}  # fmt: skip


def _ask(question: str, default: str | None = None) -> str:
    if not sys.stdin.isatty():
        if default is not None:
            return default
        raise SystemExit(f"error: {question}: give it as a flag (no terminal to ask)")
    answer = input(f"{question}{f' [{default}]' if default else ''}: ").strip()
    return answer or (default or "")


def _check(args: argparse.Namespace) -> int:
    checked = _load_plan(args.path)
    if checked is None:
        return USAGE
    with Client() as client:
        findings = drift(client, checked)
    if args.json:
        print(json.dumps({"path": str(args.path), "in_sync": not findings,
                          "findings": findings}, indent=2))  # fmt: skip
    else:
        if not findings:
            print(f"{args.path}: in sync with campaign {checked.campaign_id}")
        for finding in findings:
            print(f"- {finding['problem']}\n  fix: {finding['fix']}")
    return OK if not findings else FAILED


def drift(client: Client, checked: plan.Plan) -> list[dict[str, str]]:
    """Where the plan and the live campaign disagree, each with a fix."""
    out: list[dict[str, str]] = []

    def add(problem: str, fix: str) -> None:
        out.append({"problem": problem, "fix": fix})

    try:
        campaign = client.get_campaign(checked.campaign_id)
    except errors.InvalidRequestError as exc:
        if exc.code in ("campaign_not_found", "not_found") or exc.status == 404:
            add(f"campaign {checked.campaign_id} does not exist in this project",
                "copy the campaign id from the console or `clarion campaigns list`")  # fmt: skip
            return out
        raise
    if campaign.get("type") != "api_triggered":
        add(f"campaign is {campaign.get('type')}, not API-triggered",
            "set the campaign type to API-triggered")  # fmt: skip
    if campaign.get("status") != "active":
        add(f"campaign is {campaign.get('status')}, so triggers are refused",
            f"activate it (clarion campaigns activate {checked.campaign_id})")  # fmt: skip
    rules = list(campaign.get("trigger_keys", []))
    for key in rules:
        if key not in checked.dynamic_filter_keys:
            add(f"the audience rules use trigger.{key}, missing from dynamic_filter_keys",
                f'add "{key}" to dynamic_filter_keys (and to properties, required)')  # fmt: skip
        spec = checked.properties.get(key)
        if spec is None:
            add(f"trigger.{key} is required by the audience rules but not declared",
                f'declare properties.{key} with "required": true')  # fmt: skip
        elif spec.get("required") is not True:
            add(f"trigger.{key} is required by the audience rules but optional in the plan",
                f'set properties.{key}.required to true')  # fmt: skip
    for key in checked.dynamic_filter_keys:
        if key not in rules:
            add(
                f"dynamic_filter_keys has {key}, which no audience rule uses",
                f'remove "{key}" from dynamic_filter_keys, or add the rule in the console',
            )
    for key in campaign.get("template_keys", []):
        if key not in checked.properties:
            add(f"the templates use trigger.{key}, not declared in the plan",
                f"declare properties.{key} (its type, and whether it is required)")  # fmt: skip
    for key, spec in (campaign.get("trigger_schema") or {}).items():
        mine = checked.properties.get(key)
        required = spec.get("required") and key not in rules  # rule keys: told above
        if mine is None:
            if required:
                add(f"the campaign's trigger_schema requires {key}, not declared in the plan",
                    f'declare properties.{key} as {spec["type"]}, "required": true')  # fmt: skip
            continue
        if mine.get("type") != spec["type"]:
            add(f"the plan types {key} as {mine.get('type')}, the campaign's trigger_schema "
                f"as {spec['type']}", f'set properties.{key}.type to "{spec["type"]}"')  # fmt: skip
        if required and mine.get("required") is not True:
            add(f"the campaign's trigger_schema requires {key}, optional in the plan",
                f"set properties.{key}.required to true")  # fmt: skip
    return out


if __name__ == "__main__":
    raise SystemExit(main())
