"""Calls to an OpenAI-compatible chat model for the judge: a shared token budget, backoff on 429.

The ``openai`` client reads ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` as usual (``base_url`` overrides
the latter). Its own retries are off: a 429 (rate limit) is retried here, waiting as the server's
``Retry-After`` asks or doubling from :data:`BACKOFF_S`, at most :data:`RETRIES` times. The budget counts
the tokens the server reports; once spent, no new question is sent.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from tracemill.deps import require
from tracemill.errors import ConfigError

__all__ = ["BACKOFF_S", "RETRIES", "BudgetSpent", "ChatClient"]

BACKOFF_S = 0.5
RETRIES = 5


class BudgetSpent(RuntimeError):
    """The token budget is used up: no more questions."""


class ChatClient:
    """One model behind an OpenAI-compatible API, shared by the judge's worker threads."""

    def __init__(self, model: str, *, base_url: str | None = None, max_tokens: int | None = None,
                 timeout_s: float = 120.0) -> None:
        openai = require("openai", extra="judge", feature="tracemill judge")
        self.model = model
        self.client = openai.OpenAI(base_url=base_url, api_key=os.environ.get("OPENAI_API_KEY") or "unset",
                                    max_retries=0, timeout=timeout_s)
        self._rate_limited = openai.RateLimitError
        self._errors = (openai.APIError,)
        self.budget = max_tokens
        self.spent = 0
        self.calls = 0
        self.rate_limited = 0
        self._lock = threading.Lock()

    def ask(self, messages: list[dict[str, str]]) -> str | None:
        """The model's answer text; raises :class:`BudgetSpent` when the budget is used up."""
        with self._lock:
            if self.budget is not None and self.spent >= self.budget:
                raise BudgetSpent(f"the token budget ({self.budget}) is spent")
        delay = BACKOFF_S
        for attempt in range(RETRIES + 1):
            try:
                response = self.client.chat.completions.create(model=self.model, messages=messages, temperature=0,
                                                               response_format={"type": "json_object"})
                break
            except self._rate_limited as exc:
                with self._lock:
                    self.rate_limited += 1
                if attempt == RETRIES:
                    raise ConfigError(f"the model at {self.client.base_url} kept answering 429 (rate limit)") from exc
                time.sleep(_retry_after(exc) or delay)
                delay *= 2
            except self._errors as exc:
                raise ConfigError(f"the model at {self.client.base_url} answered an error: {exc}") from exc
        usage = getattr(response, "usage", None)
        with self._lock:
            self.calls += 1
            self.spent += int(getattr(usage, "total_tokens", 0) or 0)
        return response.choices[0].message.content if response.choices else None


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return min(30.0, float(value)) if value else None
    except (AttributeError, ValueError):
        return None
