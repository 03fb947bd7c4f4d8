"""The tiny offline model: a tokenizer trained on the spot, a chat template with tools, a Llama that loads back."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from tracemill.trainer.tiny import build_tiny_model

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": {"type": "object",
                                                          "properties": {"city": {"type": "string"}}}}}]
PROMPT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Weather in Rome?"}]
CALL = {"role": "assistant", "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}}]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = build_tiny_model(tmp_path_factory.mktemp("tiny"), ["Weather in Rome?", "It is sunny in Rome."] * 5, seed=3)
    return AutoTokenizer.from_pretrained(path), AutoModelForCausalLM.from_pretrained(path), path


def test_template_renders_tools_tool_calls_and_tool_results(tiny):
    tokenizer, _, _ = tiny
    text = tokenizer.apply_chat_template(
        [*PROMPT, CALL, {"role": "tool", "tool_call_id": "call-1", "content": "sunny"},
         {"role": "assistant", "content": "Sunny."}],
        tools=TOOLS, tokenize=False)
    assert '<|tools|>{"name": "get_weather", "description": "Weather of a city"' in text
    assert "<|system|>Answer briefly.<|end|><|user|>Weather in Rome?<|end|>" in text
    assert '<|assistant|><|tool_call|>{"name": "get_weather", "arguments": {"city": "Rome"}}<|end|>' in text
    assert text.endswith("<|tool|>call-1: sunny<|end|><|assistant|>Sunny.<|end|>")


def test_prompt_with_generation_prompt_is_a_token_prefix_of_prompt_and_completion(tiny):
    tokenizer, _, _ = tiny
    prompt = tokenizer.apply_chat_template(PROMPT, tools=TOOLS, add_generation_prompt=True, return_dict=True)
    whole = tokenizer.apply_chat_template([*PROMPT, CALL], tools=TOOLS, return_dict=True,
                                          return_assistant_tokens_mask=True)
    n = len(prompt["input_ids"])
    assert whole["input_ids"][:n] == prompt["input_ids"]
    assert whole["assistant_masks"][n:] == [1] * (len(whole["input_ids"]) - n)
    assert whole["input_ids"][-1] == tokenizer.eos_token_id


def test_model_is_a_tiny_llama_sized_to_the_tokenizer(tiny):
    tokenizer, model, _ = tiny
    assert model.config.model_type == "llama"
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (64, 2)
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.pad_token_id is not None and tokenizer.pad_token_id != tokenizer.eos_token_id


def test_same_seed_gives_the_same_weights_and_text_round_trips(tiny, tmp_path):
    tokenizer, model, _ = tiny
    again = AutoModelForCausalLM.from_pretrained(
        build_tiny_model(tmp_path, ["Weather in Rome?", "It is sunny in Rome."] * 5, seed=3))
    first, second = next(model.parameters()), next(again.parameters())
    assert first.shape == second.shape and bool((first == second).all())
    unseen = "Zürich: 12°C, {\"wind\": 3}"
    assert tokenizer.decode(tokenizer(unseen, add_special_tokens=False)["input_ids"]) == unseen
