"""A tiny offline chat model for tests, demos and benchmarks: no hub, no download.

``build_tiny_model(directory, texts)`` trains a byte-level BPE tokenizer on the given texts, wraps it with a
chat template that renders system/user/assistant/tool messages, the ``tools`` list and assistant ``tool_calls``
(the transformers convention), builds a randomly initialized Llama (hidden size 64, 2 layers) from a config and
saves both, so ``from_pretrained(directory)`` and TRL's trainers load it like any other checkpoint.

Every boundary of the template is a special token, so a rendered prompt (with the generation prompt) is always a
token prefix of the rendered prompt + completion: TRL's completion masks then start exactly after the prompt.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from tracemill.deps import require

PAD, EOS, BOS = "<|pad|>", "<|end|>", "<|begin|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>")
EXTRA_TOKENS = ("<|tools|>", "<|tool_call|>")
SPECIAL_TOKENS = (PAD, EOS, BOS, *ROLE_TOKENS, *EXTRA_TOKENS)

# Rendering: tool definitions first (one JSON object per line), then each message as <|role|>content<|end|>.
# An assistant turn renders its text, then one <|tool_call|>{"name", "arguments"} per call; a tool result
# names the call it answers. `{% generation %}` marks assistant tokens for SFT's assistant-only loss.
CHAT_TEMPLATE = (
    "{%- macro text(content) -%}"
    "{%- if content is string -%}{{ content }}"
    "{%- elif content is iterable -%}"
    "{%- for part in content -%}{%- if part.type == 'text' -%}{{ part.text }}{%- endif -%}{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
    "{{- '<|begin|>' -}}"
    "{%- if tools -%}"
    "{{- '<|tools|>' -}}"
    "{%- for tool in tools -%}"
    "{{- (tool.function if tool.function is defined else tool) | tojson -}}{{- '\n' -}}"
    "{%- endfor -%}"
    "{{- '<|end|>' -}}"
    "{%- endif -%}"
    "{%- for message in messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- '<|assistant|>' -}}"
    "{%- generation -%}"
    "{%- if message.content -%}{{- text(message.content) -}}{%- endif -%}"
    "{%- if message.tool_calls -%}"
    "{%- for call in message.tool_calls -%}"
    "{%- set fn = call.function if call.function is defined else call -%}"
    "{{- '<|tool_call|>' -}}{{- {'name': fn.name, 'arguments': fn.arguments} | tojson -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|end|>' -}}"
    "{%- endgeneration -%}"
    "{%- elif message.role == 'tool' -%}"
    "{{- '<|tool|>' -}}"
    "{%- if message.tool_call_id -%}{{- message.tool_call_id ~ ': ' -}}"
    "{%- elif message.name -%}{{- message.name ~ ': ' -}}{%- endif -%}"
    "{{- text(message.content) -}}{{- '<|end|>' -}}"
    "{%- else -%}"
    "{{- '<|' ~ message.role ~ '|>' -}}{{- text(message.content) -}}{{- '<|end|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)


def build_tiny_model(directory: str | os.PathLike[str], texts: Iterable[str], *, vocab_size: int = 512,
                     seed: int = 0) -> Path:
    """Train a tokenizer on ``texts``, build a tiny Llama, save both under ``directory``; return its path.

    ``texts`` should cover what the model will read (the rows of a dataset), so the tokenizer learns merges for
    them; anything else still encodes, byte by byte. ``vocab_size`` is an upper bound (a small corpus yields
    fewer merges); ``seed`` fixes the model's initial weights.
    """
    require("torch", extra="train", feature="Building the tiny model")
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    backend.train_from_iterator(list(texts), trainer=trainer)

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token=BOS, eos_token=EOS, pad_token=PAD,
        additional_special_tokens=[*ROLE_TOKENS, *EXTRA_TOKENS], model_max_length=4096,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out)

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=4096,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    with torch.random.fork_rng(devices=[]):  # seed these weights without touching the caller's generator
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    model.save_pretrained(out)
    return out
