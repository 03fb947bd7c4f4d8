"""Masking of secrets in captured payloads, before anything leaves the process.

Two rules, applied everywhere tracemill writes text (payloads, exception messages and stack
traces, status messages, attribute values):

- Key names: the whole value under a sensitive key is masked, whatever its type. A key is
  sensitive when it contains ``password``, ``passwd``, ``secret``, ``token`` (not ``tokens``,
  ``token_count``, ``tokenizer``), ``api_key``, ``access_key``, ``private_key`` or ``credential``
  (``_``, ``-``, ``.`` or nothing between the words: ``apiKey``, ``x-goog-api-key``), starts with
  ``auth`` (not ``author``), contains ``authorization``, or is ``cookie``/``set-cookie``; plus
  the user's own names (exact, or ``*`` globs).
- Token formats, searched in string values: OpenAI-style ``sk-…``, GitHub ``ghp_…``/``github_pat_…``,
  AWS ``AKIA…``, Slack ``xox[bp]-…``, ``Bearer``/``Basic`` credentials, JWTs, the password of a
  connection URL (``postgres://admin:[REDACTED]@host``) and ``password: …``/``password=…`` in free
  text; plus the user's own regular expressions.

Detection works on the encoded JSON text with literal prefilters and compiled regular
expressions, which keeps the common case (nothing to mask) off any Python-level object walk.
Only when a sensitive key or a pattern is found is the payload decoded and walked, and patterns
are applied inside string values only, so a match can never join or split JSON strings.
A user callback sees the Python value before encoding. (Patterns are searched in the escaped
text, so a pattern that needs a literal quote, backslash or control character is not supported.)
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import re
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

MASK = "[REDACTED]"

ALWAYS_MASKED_KEYS = (
    "api_key", "apikey", "api-key", "x-api-key", "password", "passwd", "secret", "client_secret",
    "token", "access_token", "refresh_token", "id_token", "auth_token", "authorization",
    "proxy-authorization", "cookie", "set-cookie", "private_key",
)
"""Key names (case-insensitive, exact) whose values are masked whatever the settings say; the
patterns of :data:`SENSITIVE_KEY_PATTERN` cover many more."""

_SEP = r"[_\-.]?"
SENSITIVE_KEY_PATTERN = (
    r"[^\"\\]*(?:passw(?:or)?d|secret|credential"
    rf"|api{_SEP}key|access{_SEP}key|private{_SEP}key"
    r"|token(?!s|_?counts?|_?ize|_?type|_?limit|_?usage))[^\"\\]*"
    r"|(?:proxy[_\-])?auth(?!or(?!iz))[^\"\\]*|[^\"\\]*authorization[^\"\\]*"
)
"""Key names (matched whole, case-insensitive) whose values are always masked."""

def _at_word_start(match: re.Match[str]) -> bool:
    """Token formats are searched without ``\b`` (which would cost sre its fast literal scan): check here."""
    start = match.start()
    if start == 0:
        return True
    before = match.string[start - 1]
    return not (before.isalnum() or before == "_")


def _mask_token(match: re.Match[str]) -> str:
    return MASK if _at_word_start(match) else match.group(0)


def _mask_basic(match: re.Match[str]) -> str:
    """``Basic <b64>`` is masked only when it decodes to ``user:password`` (so ``Basic arithmetic`` stays)."""
    if not _at_word_start(match):
        return match.group(0)
    encoded = match.group(1)
    try:
        decoded = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return match.group(0)
    return MASK if ":" in decoded and decoded.isprintable() else match.group(0)


def _keep_key(match: re.Match[str]) -> str:
    """Mask the value of ``password=…``, keeping the key."""
    return match.group(1) + MASK


def _keep_user(match: re.Match[str]) -> str:
    """Mask the password of ``scheme://user:password@``, keeping the scheme and the user."""
    return match.group(1) + MASK + "@"


def _mask_all(match: re.Match[str]) -> str:
    return MASK


def _cased(*words: str) -> str:
    """``word|Word|WORD`` for each word: case-insensitive without ``(?i)``, which disables sre's fast scan."""
    return "|".join(f"{w}|{w[0].upper()}{w[1:]}|{w.upper()}" for w in words)


_KEY_WORD = (
    rf"(?:{_cased('password', 'passwd', 'pwd', 'secret')}|{_cased('token', 'tokn')}"
    r"|[Aa]pi[_\-.]?[Kk]ey|API[_\-.]?KEY|api[_\-.]?key|[Aa]ccess[_\-.]?[Kk]ey|ACCESS[_\-.]?KEY)"
)

Rule = tuple[tuple[str, ...], str, Callable[[re.Match[str]], str]]

DEFAULT_RULES: tuple[Rule, ...] = (
    (("sk-",), r"sk-[A-Za-z0-9_\-]{16,}", _mask_token),  # OpenAI / Anthropic-style secret keys
    (("gh",), r"gh[pousr]_[A-Za-z0-9]{20,}", _mask_token),  # GitHub tokens
    (("github_pat_",), r"github_pat_[A-Za-z0-9_]{20,}", _mask_token),  # GitHub fine-grained tokens
    (("akia", "asia"), r"A(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])", _mask_token),  # AWS access key ids
    (("xox",), r"xox[abposr]-[A-Za-z0-9\-]{10,}", _mask_token),  # Slack tokens
    (("eyj",), r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*", _mask_token),  # JWTs
    (("bearer",), r"(?:Bearer|bearer|BEARER)\s+[A-Za-z0-9._~+/\-]{8,}=*", _mask_token),
    (("basic",), r"(?:Basic|basic|BASIC)\s+([A-Za-z0-9+/]{8,}={0,2})", _mask_basic),
    # The password of user:password@ in a URL: the scheme and the user are kept.
    (("://",), r"(://[^\s:/?#@\"'\\]*:)[^\s/?#@\"'\\]+@", _keep_user),
    # password: x, password=x, DB_PASSWORD='x', "secret": x in free text: the key is kept.
    (("pass", "pwd", "secret", "key", "token"),
     rf"({_KEY_WORD}(?![a-z]|_?count|_?COUNT)[A-Za-z0-9_\-]*['\"]?[ \t]*[:=][ \t]*['\"]?)[^\s'\",;&}}\]\\]+",
     _keep_key),
)
"""Token formats masked in every string: (lowercase literals one of which the text must contain,
the regular expression, how a match is replaced). Regular expressions start with a literal where they
can (no ``\b``, no ``(?i)``), which lets sre scan long texts as fast as a substring test."""

DEFAULT_PATTERNS = tuple(pattern for _, pattern, _ in DEFAULT_RULES)

_KEY_HINTS = ("key", "pass", "secret", "token", "auth", "cookie", "credential")
"""Substrings covering every sensitive key: when none occurs, the key regex is skipped."""

_JSON_VALUE = r'(?:"(?:[^"\\]|\\.)*"|-?\d[\d.eE+\-]*|true|false|null)'


def _key_alternatives(extra_keys: Iterable[str]) -> str:
    """The regex of every sensitive key: the built-in pattern, the exact names and the user's names or globs."""
    exact = [re.escape(k) for k in ALWAYS_MASKED_KEYS]
    for key in extra_keys:
        # fnmatch.translate gives (?s:...)\Z; keep the inner part, and no quote may sit inside a key.
        exact.append(fnmatch.translate(key)[4:-3].replace(".*", '[^"\\\\]*') if "*" in key else re.escape(key))
    return "|".join((SENSITIVE_KEY_PATTERN, *exact))


_ASSIGNMENT_PREFILTER = re.compile(
    r"(?:passw(?:or)?d|pwd|secret|tokn?|api[_\-.]?key|access[_\-.]?key)[a-z0-9_\-]*['\"]?[ \t]*[:=]"
)
"""The assignment rule's shape in lowercase text: about five times cheaper than the cased rule, which
runs only when this finds something."""

_KEY_CANDIDATE_RE = re.compile(r'"([^"\\]{1,256})"\s*:')
"""Every short JSON object key: each one found is checked against the (cached) key rules, which is far
cheaper than searching the key rules themselves through long string values."""

_Compiled = tuple[tuple[str, ...], re.Pattern[str] | None, re.Pattern[str], Callable[[re.Match[str]], str]]


class Redactor:
    """Masks secrets in JSON text, free text and attribute values. Build once per configuration;
    every method is thread-safe."""

    def __init__(
        self,
        *,
        extra_keys: Iterable[str] = (),
        patterns: Iterable[str] = (),
        callback: Callable[[str, Any], Any] | None = None,
    ) -> None:
        extra_keys = tuple(extra_keys)
        alternatives = _key_alternatives(extra_keys)
        self._key_fullmatch = re.compile(r"(?i:" + alternatives + r")").fullmatch
        self._key_re = re.compile(r'("(?i:' + alternatives + r')"\s*:\s*)' + _JSON_VALUE)
        self._key_hints = tuple({*_KEY_HINTS, *(part.lower() for k in extra_keys for part in k.split("*") if part)})
        self._key_cache: dict[str, bool] = {}
        self._text_cache: dict[str, str] = {}
        rules: list[_Compiled] = [
            (hints, _ASSIGNMENT_PREFILTER if replace is _keep_key else None, re.compile(pattern), replace)
            for hints, pattern, replace in DEFAULT_RULES
        ]
        patterns = tuple(patterns)
        if patterns:
            try:
                # No literal to look for first in a user's pattern: it is always searched.
                rules.append(((), None, re.compile("|".join(f"(?:{p})" for p in patterns)), _mask_all))
            except re.error as exc:
                raise ValueError(f"invalid redaction pattern: {exc}") from exc
        self._rules = tuple(rules)
        # Short texts (most attribute values) are first checked with one regex of every literal hint:
        # cheaper than a Python loop of substring tests. None when a user pattern must always run.
        hints = {*self._key_hints, *(hint for rule in rules for hint in rule[0])}
        self._hint_re = None if patterns else re.compile("|".join(map(re.escape, sorted(hints))))
        self.callback = callback

    def apply_callback(self, attribute: str, value: Any) -> Any:
        """Run the user callback; on failure the payload is dropped, never leaked."""
        if self.callback is None:
            return value
        try:
            return self.callback(attribute, value)
        except Exception:
            return MASK

    def is_sensitive_key(self, key: str) -> bool:
        """Whether the value under ``key`` (a payload key, metadata key or attribute name) is always masked."""
        known = self._key_cache.get(key)
        if known is None:
            known = self._key_fullmatch(key) is not None
            if len(self._key_cache) < 4096:  # attribute names are few; a flood of distinct keys is not cached
                self._key_cache[key] = known
        return known

    def redact_json(self, text: str) -> str:
        """Mask values under sensitive keys and pattern matches; the result is still valid JSON."""
        lowered = text.lower()
        if self._nothing_to_mask(lowered):
            return text
        keys = self._may_have_keys(lowered) and self._has_sensitive_key(text)
        rules = tuple(rule for rule in self._candidate_rules(lowered) if rule[2].search(text) is not None)
        if not keys and not rules:
            return text
        return msgspec.json.encode(self._mask(msgspec.json.decode(text), rules)).decode()

    def redact_text(self, text: str) -> str:
        """Mask ``"key": value`` pairs written as JSON and pattern matches in free text."""
        if len(text) > 64:
            return self._redact_text(text)
        # Short values (a step kind, a model name, an agent name) repeat on every span: remember them.
        known = self._text_cache.get(text)
        if known is None:
            known = self._redact_text(text)
            if len(self._text_cache) < 4096:
                self._text_cache[text] = known
        return known

    def _redact_text(self, text: str) -> str:
        lowered = text.lower()
        if self._nothing_to_mask(lowered):
            return text
        if self._may_have_keys(lowered):
            text = self._key_re.sub(self._key_replacement, text)
        return self._apply(text, self._candidate_rules(lowered))

    def redact_attribute(self, key: str, value: Any) -> Any:
        """An attribute value as it may leave the process: masked under a sensitive key, else its
        strings (also inside a sequence) with secrets masked."""
        if self.is_sensitive_key(key):
            return MASK
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, (list, tuple)) and value and isinstance(value[0], str):
            return tuple(self.redact_text(v) if isinstance(v, str) else v for v in value)
        return value

    def _nothing_to_mask(self, lowered: str) -> bool:
        return len(lowered) < 256 and self._hint_re is not None and self._hint_re.search(lowered) is None

    def _has_sensitive_key(self, text: str) -> bool:
        is_sensitive = self.is_sensitive_key
        for match in _KEY_CANDIDATE_RE.finditer(text):  # noqa: SIM110 - keeps the per-key cache lookup inline
            if is_sensitive(match.group(1)):
                return True
        return False

    def _candidate_rules(self, lowered: str) -> list[_Compiled]:
        """The rules whose literal hints (and prefilter) occur in the text (all of them for a user's patterns)."""
        out = []
        for rule in self._rules:
            hints, prefilter = rule[0], rule[1]
            if not hints:
                out.append(rule)
                continue
            for hint in hints:
                if hint in lowered:
                    if prefilter is None or prefilter.search(lowered) is not None:
                        out.append(rule)
                    break
        return out

    @staticmethod
    def _apply(text: str, rules: Iterable[_Compiled]) -> str:
        for _, _, pattern, replace in rules:
            text = pattern.sub(replace, text)
        return text

    def _mask(self, value: Any, rules: tuple[_Compiled, ...]) -> Any:
        if isinstance(value, str):
            return self._apply(value, rules) if rules else value
        if isinstance(value, list):
            return [self._mask(v, rules) for v in value]
        if isinstance(value, dict):
            return {k: MASK if self.is_sensitive_key(k) else self._mask(v, rules) for k, v in value.items()}
        return value

    def _may_have_keys(self, lowered: str) -> bool:
        for hint in self._key_hints:  # noqa: SIM110 - a loop is ~3x faster than any() on this hot path
            if hint in lowered:
                return True
        return False

    @staticmethod
    def _key_replacement(match: re.Match[str]) -> str:
        return match.group(1) + '"' + MASK + '"'
