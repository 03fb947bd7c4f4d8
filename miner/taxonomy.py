"""Failure taxonomy: error and failing-tool messages grouped into named clusters.

Messages are first reduced to templates (numbers, ids, quoted values and paths replaced by
placeholders, a traceback by its last line), so "no airport found for 'Atlantis'" and "... 'Narnia'"
are one template. Templates are then clustered by TF-IDF similarity (agglomerative, cosine), so
close wordings of one problem share a group. Each group is named after its most common template.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Message", "build_taxonomy", "normalize"]

_MAX_CLUSTERED = 400
_RULES = (
    (re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"), "<str>"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b"), "<id>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b"), "<id>"),
    (re.compile(r"(?:/[\w.\-]+){2,}"), "<path>"),
    (re.compile(r"https?://\S+"), "<url>"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "<num>"),
    (re.compile(r"\s+"), " "),
)


@dataclass(frozen=True)
class Message:
    trace_id: str
    text: str
    tool: str
    detector: str


def normalize(text: str) -> str:
    """The template of an error message."""
    text = _message_of(text.strip())
    if "Traceback (most recent call last)" in text:
        lines = [line for line in text.splitlines() if line.strip()]
        text = lines[-1] if lines else text
    text = text.lower()[:400]
    for pattern, placeholder in _RULES:
        text = pattern.sub(placeholder, text)
    return text.strip()


def build_taxonomy(messages: Sequence[Message], *, max_groups: int = 20) -> list[dict[str, Any]]:
    """Named groups, largest first: name, trace count, templates, tools, detectors, example traces."""
    by_template: dict[str, list[Message]] = defaultdict(list)
    template_of: dict[str, str] = {}  # one error text recurs in many runs: reduced once
    for message in messages:
        if message.text.strip():
            template = template_of.get(message.text)
            if template is None:
                template = template_of[message.text] = normalize(message.text)
            by_template[template].append(message)
    if not by_template:
        return []
    templates = sorted(by_template, key=lambda t: -len(by_template[t]))
    head, tail = templates[:_MAX_CLUSTERED], templates[_MAX_CLUSTERED:]
    labels = _cluster(head)
    clusters: dict[int, list[str]] = defaultdict(list)
    for template, label in zip(head, labels, strict=True):
        clusters[label].append(template)
    groups = list(clusters.values()) + [[t] for t in tail]
    out: list[dict[str, Any]] = []
    for members in groups:
        items = [m for t in members for m in by_template[t]]
        traces = list(dict.fromkeys(m.trace_id for m in items))
        tools = Counter(m.tool for m in items if m.tool)
        top_tool = tools.most_common(1)[0][0] if tools else ""
        lead = members[0]
        out.append({
            "name": (f"{top_tool}: " if top_tool else "") + (lead if len(lead) <= 80 else lead[:79] + "…"),
            "count": len(traces),
            "templates": members[:5],
            "tools": dict(tools.most_common(5)),
            "detectors": dict(Counter(m.detector for m in items).most_common()),
            "examples": traces[:3],
            "example_message": items[0].text[:300],
        })  # fmt: skip
    out.sort(key=lambda g: (-g["count"], g["name"]))
    return out[:max_groups]


def _message_of(text: str) -> str:
    """The message inside a JSON error result (``{"error": "..."}``), else the text itself."""
    if not text.startswith(("{", '"')):
        return text
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("error", "message", "detail", "error_message", "exception"):
            inner = value.get(key)
            if isinstance(inner, dict):
                inner = inner.get("message") or json.dumps(inner)
            if isinstance(inner, str) and inner:
                return inner
    return text


def _cluster(templates: list[str]) -> list[int]:
    if len(templates) < 2:
        return [0] * len(templates)
    from sklearn.cluster import AgglomerativeClustering
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectors = TfidfVectorizer(token_pattern=r"[a-z_<>]{2,}").fit_transform(templates)
    if vectors.shape[1] == 0:
        return list(range(len(templates)))
    model = AgglomerativeClustering(n_clusters=None, distance_threshold=0.5, metric="cosine", linkage="average")
    return [int(label) for label in model.fit_predict(vectors.toarray())]
