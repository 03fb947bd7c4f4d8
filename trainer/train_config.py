"""What one training run is asked to do: a config dataclass per method, checked before anything loads.

Fields left ``None`` take TRL's default for the method (its ``DPOConfig``/``KTOConfig``/``SFTConfig``), and the
report records the values TRL actually used. Defaults suit real models; a tiny test model needs a far higher
learning rate (tests pass their own).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal

from tracemill.errors import ConfigError

TrainKind = Literal["dpo", "kto", "sft"]
TRAIN_KINDS: tuple[TrainKind, ...] = ("dpo", "kto", "sft")


@dataclass(frozen=True)
class LoraOptions:
    """The peft LoRA adapter trained instead of the full weights (``--lora``)."""

    r: int = 16
    alpha: int = 32
    dropout: float = 0.0
    # peft's shorthand for every linear layer but the output head, whatever the architecture calls them.
    target_modules: str | list[str] = "all-linear"


@dataclass(frozen=True)
class TrainConfig:
    """Options every method shares.

    epochs: passes over the train split. lr: learning rate (None: TRL's default for the method).
    max_length: tokens per prompt + completion, longer rows are truncated (None: TRL's default, 1024).
    seed: seeds data order and adapter initialization. batch_size: rows per device per step.
    lora: train a LoRA adapter (``lora_options``) and save only the adapter.
    """

    kind: ClassVar[TrainKind]
    epochs: float = 1.0
    lr: float | None = None
    max_length: int | None = None
    seed: int = 42
    batch_size: int = 8
    lora: bool = False
    lora_options: LoraOptions = field(default_factory=LoraOptions)

    def __post_init__(self) -> None:
        if not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0 (got {self.epochs}); pass --epochs 1 or more")
        if self.lr is not None and not self.lr > 0:
            raise ConfigError(f"lr must be > 0 (got {self.lr}); pass --lr 5e-6, say")
        if self.max_length is not None and self.max_length < 2:
            raise ConfigError(f"max_length must be at least 2 tokens (got {self.max_length})")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size must be >= 1 (got {self.batch_size})")

    def options(self) -> dict[str, Any]:
        """The options as given, for the report."""
        return {"kind": self.kind, **asdict(self)}


@dataclass(frozen=True)
class DPOTrainConfig(TrainConfig):
    """DPO on ``prompt``/``chosen``/``rejected`` pairs. beta: how far the policy may move from the reference
    (the initial model); also scales the reported reward margin. None: TRL's default, 0.1."""

    kind: ClassVar[TrainKind] = "dpo"
    beta: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta is not None and not self.beta > 0:
            raise ConfigError(f"beta must be > 0 (got {self.beta}); pass --beta 0.1, say")


@dataclass(frozen=True)
class KTOTrainConfig(TrainConfig):
    """KTO on ``prompt``/``completion``/``label`` rows (desirable or not). KTO estimates its KL term from the
    other rows of a batch, so a batch needs at least two rows."""

    kind: ClassVar[TrainKind] = "kto"
    beta: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.beta is not None and not self.beta > 0:
            raise ConfigError(f"beta must be > 0 (got {self.beta}); pass --beta 0.1, say")
        if self.batch_size < 2:
            raise ConfigError(f"KTO needs at least 2 rows per batch to estimate its KL term (got batch_size="
                              f"{self.batch_size}); pass --batch-size 2 or more")


@dataclass(frozen=True)
class SFTTrainConfig(TrainConfig):
    """Supervised fine-tuning on ``messages`` conversations (or ``prompt``/``completion``). No beta."""

    kind: ClassVar[TrainKind] = "sft"


CONFIGS: dict[TrainKind, type[TrainConfig]] = {"dpo": DPOTrainConfig, "kto": KTOTrainConfig, "sft": SFTTrainConfig}


def make_config(kind: str, *, beta: float | None = None, **options: Any) -> TrainConfig:
    """The config of ``kind`` from keyword options; ``beta`` is refused for SFT, which has none."""
    if kind not in CONFIGS:
        raise ConfigError(f"training kind must be one of {list(TRAIN_KINDS)} (got {kind!r})")
    if kind == "sft":
        if beta is not None:
            raise ConfigError("SFT has no beta; drop --beta (it applies to dpo and kto)")
        return CONFIGS[kind](**options)
    return CONFIGS[kind](beta=beta, **options)  # type: ignore[call-arg]
