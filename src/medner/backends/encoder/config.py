"""The encoder's training configuration: one typed dataclass backs the TOML file and the CLI
flags (the conventions and behaviour are ``medner.core.config.TrainingConfig``'s)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medner.core.config import TrainingConfig, config_field

Scheme = Literal["BIO", "BILOU"]
AlignPolicy = Literal["expand", "contract", "strict"]
Merge = Literal["center", "mean"]


_CRF_GONE = ("the linear-chain CRF head gave no gain (BC5CDR dev 85.90 against 85.91 without "
             "it, p = 0.99, docs/benchmarks.md); constrained decoding does its work. Leave "
             "the option out")
_TEACHER_GONE = ("knowledge distillation gave no gain (BC5CDR dev 85.70 for a student of the "
                 "four-seed ensemble against 86.01 without a teacher, p = 0.13, "
                 "docs/benchmarks.md). Leave the option out; `medner ensemble` still averages "
                 "several models")
REMOVED_FIELDS: dict[str, tuple[type, str]] = {
    "crf": (bool, _CRF_GONE), "teacher": (str, _TEACHER_GONE),
    "teacher_weight": (float, _TEACHER_GONE)}
"""Options that no longer exist -> (their type, why they went): setting one is an error that
says so. Model folders trained with them still load; their ``training_config`` is a record."""


_f = config_field


@dataclass(frozen=True)
class EncoderConfig(TrainingConfig):
    BACKEND = "encoder"
    REMOVED = REMOVED_FIELDS

    # --- model ----------------------------------------------------------------
    base_model: str = _f("minilm-l6", "Base encoder: a packaged alias (minilm-l6), a local "
                         "model folder or a Hugging Face Hub id.")
    out: str = _f("models/encoder", "Output model folder (written atomically).")
    scheme: Scheme = _f("BIO", "Tagging scheme: BIO or BILOU.", choices=("BIO", "BILOU"))
    align: AlignPolicy = _f("expand", "Spans whose edges fall inside a word: expand them to "
                            "whole words, contract them to the words fully inside, or 'strict' "
                            "to drop them. Every such span is counted and reported.",
                            choices=("expand", "contract", "strict"))
    max_length: int = _f(128, "Tokens per training window (special tokens included).")
    stride: int = _f(32, "Tokens shared by consecutive windows of a long document.")
    predict_max_length: int = _f(256, "Tokens per window at prediction time.")
    window_merge: Merge = _f("center", "How overlapping windows are merged at prediction: 'center' "
                      "keeps, for each word, the window where it is furthest from an edge; "
                      "'mean' averages the windows' probabilities.", choices=("center", "mean"))
    join_fragments: bool = _f(True, "Join two neighbouring mentions of one type separated by "
                              "a single space ('iron' + 'dextran' -> 'iron dextran').")
    propagate: bool = _f(False, "After decoding, also tag other occurrences of a mention found "
                         "in the same document (same words, case-insensitive).")
    # --- optimisation ---------------------------------------------------------
    epochs: float = _f(10.0, "Maximum number of training epochs.")
    batch_size: int = _f(16, "Training windows per step.")
    learning_rate: float = _f(2e-4, "Peak learning rate (MiniLM likes 1e-4 to 3e-4).")
    warmup: float = _f(0.1, "Warmup: a fraction of all steps (< 1) or a number of steps.")
    weight_decay: float = _f(0.01, "AdamW weight decay.")
    scheduler: str = _f("linear", "Learning-rate schedule after warmup (transformers name).")
    dropout: float | None = _f(None, "Classifier dropout (default: the base model's).")
    adversarial_epsilon: float = _f(0.0, "Adversarial training (FGM): after each step, move "
                                    "the word embeddings this far (L2 norm) along their "
                                    "gradient and learn the batch again there; twice the "
                                    "training cost. 0 turns it off.")
    patience: int = _f(3, "Early stopping: evaluations without a better dev F1 before stopping.")
    predict_batch_size: int = _f(16, "Windows per forward pass at prediction time.")

    def __post_init__(self) -> None:
        checks = [
            (self.scheme in ("BIO", "BILOU"), "scheme", "must be BIO or BILOU"),
            (self.align in ("expand", "contract", "strict"), "align",
             "must be expand, contract or strict"),
            (self.window_merge in ("center", "mean"), "window_merge", "must be center or mean"),
            (self.max_length >= 8, "max_length", "must be at least 8"),
            (self.predict_max_length >= 8, "predict_max_length", "must be at least 8"),
            (0 <= self.stride < self.max_length - 2, "stride", "must be >= 0 and < max_length - 2"),
            (self.epochs > 0, "epochs", "must be > 0"),
            (self.max_steps is None or self.max_steps > 0, "max_steps", "must be > 0"),
            (self.batch_size > 0, "batch_size", "must be > 0"),
            (self.predict_batch_size > 0, "predict_batch_size", "must be > 0"),
            (self.learning_rate > 0, "learning_rate", "must be > 0"),
            (self.warmup >= 0, "warmup", "must be >= 0"),
            (self.patience >= 0, "patience", "must be >= 0"),
            (self.on_mismatch in ("error", "skip"), "on_mismatch", "must be error or skip"),
            (self.adversarial_epsilon >= 0, "adversarial_epsilon", "must be >= 0"),
        ]
        self.check(checks)


field_help = EncoderConfig.field_help
field_types = EncoderConfig.field_types
defaults = EncoderConfig.defaults
coerce_config = EncoderConfig.coerce
load_config = EncoderConfig.load


def removed_fields() -> dict[str, tuple[type, str]]:
    """Options this backend once had -> (type, why they went); ``medner train`` refuses them."""
    return dict(REMOVED_FIELDS)


__all__ = ["REMOVED_FIELDS", "EncoderConfig", "coerce_config", "defaults", "field_help",
           "field_types", "load_config", "removed_fields"]
