"""Clarion's own docs as ranked passages for ``search_docs``: the README (which holds the
trigger API, the campaign file format and the configuration reference), the client SDK's
README (the trigger-plan format) and the API reference generated from the live server's
OpenAPI document. Each passage is one section and carries its citation; the ranking is
BM25F over the section title and its body."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from itertools import pairwise
from pathlib import Path
from typing import Any

import clarion

K1 = 1.2
B = 0.75
TITLE_WEIGHT = 3.0
WINDOW = 1200  # characters: a long section is searched in windows of whole paragraphs
EXCERPT = 1500  # characters of a passage shown in a result
ROOT = Path(clarion.__file__).resolve().parents[2]  # the source checkout, when there is one
STOP = frozenset(
    re.findall(
        r"\w+",
        "a an and are as at be by can do does for from how i if in is it its me my of on or so "
        "that the then this to was what when where which who why will with you your",
    )
)
_WORD = re.compile(r"[a-z0-9]+")
_HEADING = re.compile(r"^(#{1,4})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def stem(word: str) -> str:
    """A light suffix stripper, enough that "triggers", "triggered" and "triggering" meet."""
    for suffix, keep in (("ies", "y"), ("ing", ""), ("ed", ""), ("es", ""), ("s", "")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            if suffix == "s" and word.endswith("ss"):
                return word
            return word[: -len(suffix)] + keep
    return word


def tokens(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in STOP]


def terms(text: str) -> list[str]:
    """Words and adjacent word pairs: a pair is a term of its own, so that a passage with
    the query's phrase ("audience filter") outranks one with the words apart."""
    words = tokens(text)
    return words + [f"{a} {b}" for a, b in pairwise(words)]


@dataclass(frozen=True)
class Passage:
    source: str  # README.md, sdk/README.md, openapi.json
    section: str  # the heading path, or METHOD /path
    text: str

    @property
    def citation(self) -> str:
        return f"{self.source} § {self.section}"


def windows(text: str, size: int = WINDOW) -> Iterator[str]:
    """A long section as consecutive windows of whole paragraphs (a code block or table is
    one paragraph), so that a focused paragraph is not drowned by the rest of its section."""
    paragraphs: list[str] = []
    current: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        if not line.strip() and not fenced:
            if current:
                paragraphs.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        paragraphs.append("\n".join(current))
    window: list[str] = []
    for paragraph in paragraphs:
        if window and sum(map(len, window)) + len(paragraph) > size:
            yield "\n\n".join(window)
            window = []
        window.append(paragraph)
    if window:
        yield "\n\n".join(window)


def markdown_passages(source: str, text: str) -> Iterator[Passage]:
    """Passages of each section (headings up to ####; headings inside code fences do not
    count), a long one in windows. A section's name is its heading path below the document
    title: ``Campaign files > Audience rules``."""
    trail: list[tuple[int, str]] = []
    lines: list[str] = []
    fenced = False

    def flush() -> Iterator[Passage]:
        body = "\n".join(lines).strip()
        if not trail or not body:
            return
        named = [t for level, t in trail if level > 1] or [trail[0][1]]
        for window in windows(body):
            yield Passage(source, " > ".join(named), window)

    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        heading = None if fenced else _HEADING.match(line)
        if heading is None:
            lines.append(line)
            continue
        yield from flush()
        lines = []
        level = len(heading.group(1))
        trail = [t for t in trail if t[0] < level] + [(level, heading.group(2).strip("`"))]
    yield from flush()


def _schema_words(schema: Any, schemas: Mapping[str, Any], seen: set[str]) -> Iterator[str]:
    """Field names and descriptions of a JSON schema, following $refs once each."""
    if isinstance(schema, dict):
        if isinstance(schema.get("$defs"), dict):
            schemas = {**schemas, **schema["$defs"]}
        ref = schema.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                yield name
                yield from _schema_words(schemas.get(name), schemas, seen)
            return
        if isinstance(schema.get("description"), str):
            yield schema["description"]
        for key, value in (schema.get("properties") or {}).items():
            yield key
            yield from _schema_words(value, schemas, seen)
        for key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
            if key in schema:
                yield from _schema_words(schema[key], schemas, seen)
    elif isinstance(schema, list):
        for item in schema:
            yield from _schema_words(item, schemas, seen)


def openapi_passages(document: Mapping[str, Any]) -> Iterator[Passage]:
    """One passage per operation: summary, description, parameters, body and answer fields."""
    schemas = (document.get("components") or {}).get("schemas") or {}
    for path, item in (document.get("paths") or {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or method.startswith("x-"):
                continue
            parts = [op.get("summary", ""), op.get("description", "")]
            for param in op.get("parameters") or []:
                parts.append(f"{param.get('in')} parameter {param.get('name')}: "
                             f"{param.get('description', '')}".rstrip(": "))  # fmt: skip
            seen: set[str] = set()
            body = (op.get("requestBody") or {}).get("content") or {}
            fields = [w for c in body.values() for w in _schema_words(c.get("schema"), schemas,
                                                                       seen)]  # fmt: skip
            if fields:
                parts.append("Request body: " + "; ".join(dict.fromkeys(fields)))
            ok = ((op.get("responses") or {}).get("200") or {}).get("content") or {}
            answer = [w for c in ok.values() for w in _schema_words(c.get("schema"), schemas,
                                                                     seen)]  # fmt: skip
            if answer:
                parts.append("Answer: " + "; ".join(dict.fromkeys(answer)))
            text = "\n".join(p for p in parts if p)
            yield Passage("openapi.json", f"{method.upper()} {path}", text)


class _Field:
    """One field's term counts and lengths across the passages."""

    def __init__(self, texts: list[str]) -> None:
        self.terms = [Counter(terms(t)) for t in texts]
        self.lengths = [sum(t.values()) for t in self.terms]
        self.average = (sum(self.lengths) / len(self.lengths)) if self.lengths else 0.0

    def weight(self, i: int, term: str) -> float:
        """The length-normalised frequency of ``term`` in passage ``i`` (BM25F's tf~)."""
        tf = self.terms[i].get(term, 0)
        if not tf or not self.average:
            return 0.0
        return tf / (1 - B + B * self.lengths[i] / self.average)


@dataclass
class Index:
    """BM25F over two fields, the section title (counted TITLE_WEIGHT times) and the body:
    each field's frequency is normalised by its own length, then they are summed and
    saturated once, so a term in a heading counts more than one more mention in a long
    section. Built once, searched many times."""

    passages: list[Passage]
    _title: _Field = field(init=False, repr=False)
    _body: _Field = field(init=False, repr=False)
    _idf: dict[str, float] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._title = _Field([p.section.split(" > ")[-1] for p in self.passages])
        self._body = _Field([p.text for p in self.passages])
        n = len(self.passages)
        df: Counter[str] = Counter()
        for title, body in zip(self._title.terms, self._body.terms, strict=True):
            df.update(title.keys() | body.keys())
        self._idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}

    def search(self, query: str, limit: int = 5) -> list[tuple[float, Passage]]:
        wanted = set(terms(query)) & self._idf.keys()
        scored = []
        for i in range(len(self.passages)):
            score = 0.0
            for term in wanted:
                tf = TITLE_WEIGHT * self._title.weight(i, term) + self._body.weight(i, term)
                if tf:
                    score += self._idf[term] * tf * (K1 + 1) / (tf + K1)
            if score > 0:
                scored.append((score, i))
        scored.sort(key=lambda s: (-s[0], s[1]))
        best: dict[str, tuple[float, Passage]] = {}  # a section's best window stands for it
        for score, i in scored:
            passage = self.passages[i]
            best.setdefault(passage.citation, (score, passage))
            if len(best) == limit:
                break
        return list(best.values())


def _readme(relative: str, distribution: str) -> str | None:
    """From the source checkout, else from the installed package's metadata (its long
    description is the same README)."""
    path = ROOT / relative
    if path.is_file():
        return path.read_text(encoding="utf-8")
    try:
        return metadata.metadata(distribution).get_payload()  # type: ignore[attr-defined, no-any-return]
    except metadata.PackageNotFoundError:
        return None


def local_passages() -> list[Passage]:
    out: list[Passage] = []
    for relative, distribution in (("README.md", "clarion"), ("sdk/README.md", "clarion-client")):
        text = _readme(relative, distribution)
        if text:
            out.extend(markdown_passages(relative, text))
    return out


def build(openapi: Mapping[str, Any] | None, extra: Iterable[Passage] = ()) -> Index:
    passages = local_passages() + list(extra)
    if openapi is not None:
        passages.extend(openapi_passages(openapi))
    return Index(passages)


def result(score: float, passage: Passage) -> dict[str, Any]:
    text = passage.text
    if len(text) > EXCERPT:
        text = text[:EXCERPT].rsplit("\n", 1)[0] + "\n…"
    return {"citation": passage.citation, "source": passage.source, "section": passage.section,
            "score": round(score, 3), "text": text}  # fmt: skip
