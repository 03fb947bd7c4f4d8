"""The trainer: feedback → TRL datasets (and, with the ``train`` extra, training runs).

``export(kind, store=..., output=...)`` writes a dataset of one kind (dpo, kto, sft, stepwise,
openai, flags) as JSONL + Parquet with a manifest; see :mod:`tracemill.trainer.export`.
"""

from __future__ import annotations

from tracemill.trainer.export import EXPORT_KINDS, build, export

__all__ = ["EXPORT_KINDS", "build", "export"]
