"""The assertion classifier's training settings: one dataclass, saved into its folder."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from medner.core.config import StageConfig
from medner.errors import ConfigError


@dataclass(frozen=True)
class AssertionConfig(StageConfig):
    what: ClassVar[str] = "assertion config"

    base_model: str = "minilm-l6"
    """Packaged alias, local transformers folder or hub id of the encoder to fine-tune."""
    epochs: int = 4
    """Passes over the training part; the epoch with the best held-out macro-F1 is kept."""
    max_steps: int | None = None
    """Stop after this many optimisation steps (tests, smoke runs); None: ``epochs``."""
    batch_size: int = 32
    """Spans per optimisation step."""
    learning_rate: float = 1e-4
    """AdamW rate: small encoders take rates above BERT-base's usual 2e-5 to 5e-5 (the
    shipped NER configs fine-tune the same MiniLM at 3e-4)."""
    warmup: float = 0.1
    """Fraction of the steps with a linearly rising rate."""
    weight_decay: float = 0.01
    max_length: int = 128
    """Tokens the encoder reads per span: the label, then the span's sentence with markers."""
    context_chars: int = 300
    """Characters of the sentence kept on each side of the span; a negation cue that far
    away is rarely about this span, and it keeps long run-on sentences within max_length."""
    markers: tuple[str, str] = ("[[", "]]")
    """Text put before and after the span, so the encoder knows which mention is asked about."""
    held_out: float = 0.1
    """Fraction of the training documents held out to choose the epoch (0: keep the last)."""
    seed: int = 13
    threads: int | None = None
    """torch CPU threads (None: torch's default)."""
    report_to: tuple[str, ...] = ()
    """Trainer loggers (tensorboard, mlflow, ...); none by default."""

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length", "context_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"assertion config: {name} must be at least 1, got "
                                  f"{getattr(self, name)}")
        if not 0 <= self.held_out < 1:
            raise ConfigError(f"assertion config: held_out must be in [0, 1), got {self.held_out}")
        if len(self.markers) != 2 or not all(m.strip() for m in self.markers):
            raise ConfigError(f"assertion config: markers must be two non-blank strings, got "
                              f"{self.markers!r}")
        object.__setattr__(self, "markers", tuple(self.markers))
        object.__setattr__(self, "report_to", tuple(self.report_to))
