"""Run TRL's own dataset preparation on exported files, with a tiny offline model and chat template."""

from __future__ import annotations

import warnings
from pathlib import Path

import datasets


def prepare_with_trl(kind: str, data_file: Path, model_dir: Path) -> list[str]:
    """Tokenize ``data_file`` as ``DPOTrainer``/``KTOTrainer``/``SFTTrainer`` do; return each row's prepared
    tokens decoded back to text (prompt and completion together)."""
    from transformers import AutoTokenizer

    from tracemill.trainer.tiny import build_tiny_model

    texts = [line for line in data_file.read_text().splitlines()]
    build_tiny_model(model_dir, texts)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dataset = datasets.load_dataset("json", data_files=str(data_file), split="train")
    common = {"output_dir": str(model_dir / "out"), "use_cpu": True, "bf16": False, "report_to": [],
              "per_device_train_batch_size": 2, "max_length": 2048}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "dpo":
            from trl import DPOConfig, DPOTrainer

            trainer = DPOTrainer(model=str(model_dir), args=DPOConfig(**common), train_dataset=dataset,
                                 processing_class=tokenizer)
            keys = ("prompt_ids", "chosen_ids")
        elif kind == "kto":
            from trl import KTOConfig, KTOTrainer

            trainer = KTOTrainer(model=str(model_dir), args=KTOConfig(**common), train_dataset=dataset,
                                 processing_class=tokenizer)
            keys = ("prompt_ids", "completion_ids")
        else:
            from trl import SFTConfig, SFTTrainer

            trainer = SFTTrainer(model=str(model_dir), args=SFTConfig(**common), train_dataset=dataset,
                                 processing_class=tokenizer)
            keys = ("input_ids",)
    prepared = trainer.train_dataset
    missing = [key for key in keys if key not in prepared.column_names]
    assert not missing, f"TRL prepared columns {prepared.column_names}, not {missing}"
    return [tokenizer.decode([i for key in keys for i in row[key]]) for row in prepared]
