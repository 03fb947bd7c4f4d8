"""Candidates for decision cases: a model behind an OpenAI-compatible API, or a local transformers model.

Each is a small object with ``name``, ``provider`` and ``decide(case) -> decision`` (``{"output", "tool_calls"}``),
safe to call from several threads. The local model decodes greedily and reads tool calls from its own output:
``<|tool_call|>{"name", "arguments"}`` (the template of :mod:`tracemill.trainer.tiny`) or ``<tool_call>...``
(the Hermes/Qwen convention).
"""

from __future__ import annotations

import json
import os
import re
import threading
from typing import Any, Protocol

from tracemill.errors import ConfigError
from tracemill.trainer.chat import openai_messages
from tracemill.trainer.evals.cases import Case

__all__ = ["Decider", "OpenAIDecider", "TransformersDecider", "parse_generation"]


class Decider(Protocol):
    name: str
    provider: str

    def decide(self, case: Case) -> dict[str, Any]: ...


class OpenAIDecider:
    """Chat Completions through the ``openai`` client, temperature 0, the case's exact messages and tools."""

    provider = "openai"

    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 timeout_s: float = 120.0) -> None:
        from tracemill.deps import require

        require("openai", extra="integrations", feature="tracemill eval run --model")
        import openai

        self.name = model
        key = api_key or os.environ.get("OPENAI_API_KEY") or "unused"
        self._client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=2, timeout=timeout_s)

    def decide(self, case: Case) -> dict[str, Any]:
        extra: dict[str, Any] = {"tools": case.tools} if case.tools else {}
        reply = self._client.chat.completions.create(
            model=self.name, messages=openai_messages(case.prompt), temperature=0, **extra,  # type: ignore[arg-type]
        ).choices[0].message
        calls = []
        for call in reply.tool_calls or ():
            function = getattr(call, "function", None)  # custom (non-function) tool calls have none
            if function is not None:
                calls.append({"name": function.name, "arguments": _json(function.arguments)})
        return {"output": reply.content or None, "tool_calls": calls}

    def close(self) -> None:
        self._client.close()


def _json(text: str | None) -> Any:
    try:
        return json.loads(text or "{}")
    except ValueError:
        return text


_CALL_MARKERS = re.compile(r"<\|tool_call\|>|<tool_call>")


def parse_generation(text: str, special: tuple[str, ...] = ()) -> dict[str, Any]:
    """A generated assistant turn as a decision: the text before the first tool call, then each call's JSON."""
    pieces = _CALL_MARKERS.split(text)
    answer = pieces[0]
    calls = []
    decoder = json.JSONDecoder()
    for piece in pieces[1:]:
        try:
            value, _ = decoder.raw_decode(piece.strip())
        except ValueError:
            continue
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            calls.append({"name": value["name"], "arguments": value.get("arguments", {})})
    for token in special:
        answer = answer.replace(token, "")
    return {"output": answer.replace("</tool_call>", "").strip() or None, "tool_calls": calls}


class TransformersDecider:
    """A local model directory (the output of ``tracemill train``): its chat template, greedy decoding."""

    provider = "transformers"

    def __init__(self, model_dir: str, *, max_new_tokens: int = 96) -> None:
        from tracemill.deps import require

        require("transformers", extra="train", feature="tracemill eval run --model-dir")
        from pathlib import Path

        from transformers import AutoModelForCausalLM, AutoTokenizer

        if not Path(model_dir).is_dir():
            raise ConfigError(f"--model-dir must be a model directory written by `tracemill train` (got {model_dir!r})")
        self.name = str(model_dir)
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._model = AutoModelForCausalLM.from_pretrained(model_dir)
        self._model.eval()
        self._max_new_tokens = max_new_tokens
        self._lock = threading.Lock()  # one generate at a time: the model is not shared across threads

    def decide(self, case: Case) -> dict[str, Any]:
        import torch

        tokenizer: Any = self._tokenizer  # transformers' overloads do not narrow on return_dict
        ids: Any = tokenizer.apply_chat_template(case.prompt, tools=case.tools or None, add_generation_prompt=True,
                                                 return_tensors="pt", return_dict=True)
        with self._lock, torch.no_grad():
            out = self._model.generate(**ids, max_new_tokens=self._max_new_tokens, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        text: str = tokenizer.decode(out[0][ids["input_ids"].shape[1]:], skip_special_tokens=False)
        eos = tokenizer.eos_token or ""
        if eos and eos in text:
            text = text.split(eos, 1)[0]
        special = tuple(t for t in tokenizer.all_special_tokens if t not in ("<|tool_call|>",))
        return parse_generation(text, special)

    def close(self) -> None:
        pass
