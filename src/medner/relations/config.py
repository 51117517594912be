"""The relation model's training settings: one dataclass, saved into the model folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from medner.core.config import StageConfig
from medner.errors import ConfigError


@dataclass(frozen=True)
class RelationConfig(StageConfig):
    what: ClassVar[str] = "relations config"

    base_model: str = "minilm-l6"
    """Packaged alias, local transformers folder or hub id of the encoder to fine-tune."""
    head_label: str = "Chemical"
    """Span label of the relations' heads."""
    tail_label: str = "Disease"
    """Span label of the relations' tails."""
    relation_label: str = "CID"
    """The relation learned and predicted (its ``Relation.label``)."""
    epochs: int = 5
    """Passes over the training part; the best on the held-out part is kept. On BC5CDR train
    (450 abstracts after the held-out part) an epoch took 6 to 8 minutes on one EPYC core
    shared with another training run (fp32), 157 to 200 s on two idle AMX Xeon cores (bf16);
    held-out F1 peaked between epochs 3 and 5, and 8 epochs did no better on dev."""
    batch_size: int = 4
    """Documents per optimisation step."""
    learning_rate: float = 1e-4
    """AdamW rate of the encoder: small encoders take rates above BERT-base's usual 2e-5 to
    5e-5 (the shipped BC5CDR NER config fine-tunes the same MiniLM at 3e-4)."""
    head_learning_rate: float = 1e-3
    """AdamW rate of the freshly initialised pair head, which starts far from any optimum."""
    warmup: float = 0.06
    """Fraction of steps with a linearly rising rate (ATLOP's 0.06), then linear decay."""
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    dropout: float = 0.1
    """Dropout in the pair head (the encoder keeps its own)."""
    max_length: int = 512
    """Encoder window in tokens, [CLS] and [SEP] included; longer documents are windowed."""
    window_overlap: int = 128
    """Tokens neighbouring windows share, so each token is read with context on both sides."""
    marker: str = "*"
    """Token put before and after each mention (ATLOP's entity marker)."""
    held_out: float = 0.1
    """Fraction of the training documents held out to pick the epoch and the decision
    threshold (0: keep the last epoch and threshold 0.5)."""
    seed: int = 13
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""

    def __post_init__(self) -> None:
        positive = ("epochs", "batch_size", "max_length")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"relations config: {name} must be at least 1, got "
                                  f"{getattr(self, name)}")
        if not 0 <= self.held_out < 1:
            raise ConfigError(f"relations config: held_out must be in [0, 1), got {self.held_out}")
        if not 0 <= self.window_overlap < self.max_length - 2:
            raise ConfigError("relations config: window_overlap must be in [0, max_length - 2), "
                              f"got {self.window_overlap} with max_length {self.max_length}")
        if self.head_label == self.tail_label:
            raise ConfigError(f"relations config: head_label and tail_label are both "
                              f"{self.head_label!r}; they must differ")
