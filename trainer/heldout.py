"""Held-out measures before and after training: did the model move towards what people preferred?

They read the eval split as TRL tokenized it (``prompt_ids`` and the completion ids: the chat template applied
with the row's tools, the completion starting where TRL starts it), truncated as TRL's collators truncate, and
score each completion by the sum of its token log-probabilities given the prompt.

- DPO: ``preference_accuracy`` is the share of pairs whose chosen completion the model finds more likely than
  the rejected one; ``reward_margin`` the mean of beta * ((chosen - ref chosen) - (rejected - ref rejected)),
  the reference being the model before training (so it is 0 before).
- KTO: ``preference_accuracy`` the same over every (desirable, undesirable) pair that shares a prompt (None when
  no prompt has both); ``auroc`` how well the mean per-token log-prob ranks desirable above undesirable
  completions across prompts; ``reward_margin`` the mean reward of desirable minus that of undesirable ones.
torch is imported only inside the functions.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Scored:
    """Summed completion log-probs and completion lengths (after truncation) of a list of rows."""

    logps: list[float]
    tokens: list[int]


def score_completions(model: Any, prompts: Sequence[Sequence[int]], completions: Sequence[Sequence[int]], *,
                      max_length: int | None, pad_id: int, batch_size: int = 16) -> Scored:
    """Sum of log p(completion token | everything before it) for each prompt + completion."""
    import torch

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    logps: list[float] = []
    tokens: list[int] = []
    try:
        with torch.no_grad():
            for start in range(0, len(prompts), batch_size):
                ids, masks = [], []
                for prompt, completion in zip(prompts[start:start + batch_size],
                                              completions[start:start + batch_size], strict=True):
                    seq = list(prompt) + list(completion)
                    mask = [0] * len(prompt) + [1] * len(completion)
                    if max_length is not None:  # TRL's collators keep the start
                        seq, mask = seq[:max_length], mask[:max_length]
                    ids.append(seq)
                    masks.append(mask)
                width = max(len(seq) for seq in ids)
                input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
                attention = torch.zeros((len(ids), width), dtype=torch.long)
                completion_mask = torch.zeros((len(ids), width), dtype=torch.bool)
                for row, (seq, mask) in enumerate(zip(ids, masks, strict=True)):
                    input_ids[row, :len(seq)] = torch.tensor(seq)
                    attention[row, :len(seq)] = 1
                    completion_mask[row, :len(seq)] = torch.tensor(mask, dtype=torch.bool)
                logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits.float()
                token_logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(
                    -1, input_ids[:, 1:].to(device).unsqueeze(-1)).squeeze(-1)
                scored = completion_mask[:, 1:].to(device)
                logps.extend((token_logps * scored).sum(dim=-1).tolist())
                tokens.extend(scored.sum(dim=-1).tolist())
    finally:
        model.train(was_training)
    return Scored(logps, tokens)


def dpo_measures(model: Any, rows: Any, *, beta: float, max_length: int | None, pad_id: int,
                 reference: tuple[Scored, Scored] | None = None) -> tuple[dict[str, Any], tuple[Scored, Scored]]:
    """Preference accuracy and reward margin over tokenized DPO rows; also the scores, the next reference."""
    prompts = list(rows["prompt_ids"])
    chosen = score_completions(model, prompts, list(rows["chosen_ids"]), max_length=max_length, pad_id=pad_id)
    rejected = score_completions(model, prompts, list(rows["rejected_ids"]), max_length=max_length, pad_id=pad_id)
    ref_chosen, ref_rejected = reference or (chosen, rejected)
    margins = [beta * ((c - rc) - (r - rr)) for c, rc, r, rr in
               zip(chosen.logps, ref_chosen.logps, rejected.logps, ref_rejected.logps, strict=True)]
    wins = [c > r for c, r in zip(chosen.logps, rejected.logps, strict=True)]
    return {
        "pairs": len(wins),
        "preference_accuracy": _mean(wins),
        "reward_margin": _mean(margins),
        "chosen_logp": _mean(chosen.logps),
        "rejected_logp": _mean(rejected.logps),
    }, (chosen, rejected)


def kto_measures(model: Any, rows: Any, *, beta: float, max_length: int | None, pad_id: int,
                 reference: Scored | None = None) -> tuple[dict[str, Any], Scored]:
    """Desirable-versus-undesirable accuracy, AUROC and reward margin over tokenized KTO rows."""
    prompts, labels = list(rows["prompt_ids"]), [bool(label) for label in rows["label"]]
    scored = score_completions(model, prompts, list(rows["completion_ids"]), max_length=max_length, pad_id=pad_id)
    ref = reference or scored
    rewards = [beta * (lp - rlp) for lp, rlp in zip(scored.logps, ref.logps, strict=True)]
    per_token = [lp / max(n, 1) for lp, n in zip(scored.logps, scored.tokens, strict=True)]
    good = [i for i, label in enumerate(labels) if label]
    bad = [i for i, label in enumerate(labels) if not label]

    by_prompt: dict[tuple[int, ...], tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
    for i, prompt in enumerate(prompts):
        by_prompt[tuple(prompt)][0 if labels[i] else 1].append(i)
    wins = [scored.logps[g] > scored.logps[b] for g_list, b_list in by_prompt.values()
            for g in g_list for b in b_list]
    margin = (_mean([rewards[i] for i in good]) - _mean([rewards[i] for i in bad])) if good and bad else None
    return {
        "desirable": len(good),
        "undesirable": len(bad),
        "paired": len(wins),
        "preference_accuracy": _mean(wins) if wins else None,
        "auroc": auroc([per_token[i] for i in good], [per_token[i] for i in bad]),
        "reward_margin": margin,
        "desirable_logp_per_token": _mean([per_token[i] for i in good]) if good else None,
        "undesirable_logp_per_token": _mean([per_token[i] for i in bad]) if bad else None,
    }, scored


def auroc(positive: Sequence[float], negative: Sequence[float]) -> float | None:
    """P(a random positive scores above a random negative), ties counting half (Mann-Whitney U); None if a side
    is empty."""
    if not positive or not negative:
        return None
    ranked = sorted([(value, 1) for value in positive] + [(value, 0) for value in negative])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        average_rank = (i + 1 + j) / 2  # ranks i+1..j share their mean
        rank_sum += average_rank * sum(flag for _, flag in ranked[i:j])
        i = j
    n_pos, n_neg = len(positive), len(negative)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _mean(values: Sequence[float | bool]) -> float:
    return float(sum(values)) / len(values) if values else 0.0
