"""The LLM backend's training configuration: one typed dataclass for the TOML file and the flags.

Same conventions as the encoder's config (``medner.backends.encoder.config``): each field's
help text is in ``metadata["help"]``, precedence is default < config file < flag, and data
paths in a file are resolved against the file's folder. Values are checked by
``medner.core.config`` so both backends accept and reject the same spellings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from medner.core.config import TrainingConfig, config_field

Quantize = Literal["4bit"]
DEFAULT_REPEAT_PATIENCE = 3
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


_f = config_field


@dataclass(frozen=True)
class LLMConfig(TrainingConfig):
    BACKEND = "llm"

    # --- model and prompt -----------------------------------------------------
    base_model: str = _f("smollm2-135m", "Base causal LM: a packaged alias (smollm2-135m), a "
                         "local model folder, a .gguf file or a Hugging Face Hub id.")
    out: str = _f("models/llm", "Output model folder (written atomically).")
    template: str = _f("entities-json", "Prompt template (see medner.backends.prompted.prompts."
                       "TEMPLATES): entities-json, entities-lines, label-lists, tutorial, "
                       "relations, entities-json+relations.")
    quantize: Quantize | None = _f(None, "QLoRA: '4bit' loads the base in 4-bit NF4 through "
                                   "bitsandbytes (CPU or CUDA) and trains LoRA on top.",
                                   choices=("4bit",))
    merge: bool = _f(False, "Also write merged full weights (base + adapter) so the folder "
                     "loads without the base model.")
    continue_from: str | None = _f(None, "A trained medner LLM folder whose LoRA adapter "
                                   "training continues (e.g. a second epoch on a new "
                                   "schedule) instead of a new adapter; its base model and "
                                   "LoRA settings are used.")
    lora_r: int = _f(16, "LoRA rank.")
    lora_alpha: int = _f(32, "LoRA alpha (scale = alpha / r).")
    lora_dropout: float = _f(0.05, "Dropout on the LoRA input.")
    lora_targets: tuple[str, ...] = _f(DEFAULT_TARGETS, "Module names that get LoRA adapters.")
    max_length: int = _f(1024, "Maximum tokens of prompt + completion in training; longer "
                         "examples are skipped and counted (never truncated).")
    train_piece_tokens: int | None = _f(None, "Also train on pieces of each training "
                                        "document, cut at sentence ends so that their prompt "
                                        "fits this many tokens (entity tasks only; the whole "
                                        "document stays an example). Teaches the answers "
                                        "that a smaller max_prompt_tokens asks for.")
    # --- optimisation ---------------------------------------------------------
    epochs: float = _f(1.0, "Training epochs.")
    batch_size: int = _f(4, "Examples per micro-batch.")
    grad_accum: int = _f(4, "Gradient accumulation: micro-batches per optimiser step.")
    learning_rate: float = _f(2e-4, "Peak learning rate.")
    warmup: float = _f(0.03, "Warmup: a fraction of all steps (< 1) or a number of steps.")
    weight_decay: float = _f(0.0, "AdamW weight decay.")
    scheduler: str = _f("cosine", "Learning-rate schedule after warmup (transformers name).")
    group_by_length: bool = _f(True, "Batch examples of similar length together: less "
                               "padding, so fewer wasted tokens per step.")
    gradient_checkpointing: bool = _f(False, "Recompute activations in the backward pass: "
                                      "less memory, slower steps. Worth it only when a large "
                                      "model does not fit; small models on CPU train faster "
                                      "without it.")
    logging_steps: int = _f(10, "Log the training loss every N steps.")
    # --- generation -----------------------------------------------------------
    eval_sample: int | None = _f(32, "Dev documents generated on at each evaluation and for "
                                 "the saved metrics (None or 0: all of them).")
    max_new_tokens: int = _f(384, "Generation limit per prompt; a hit is counted as truncated.")
    predict_batch_size: int = _f(8, "Answers decoded together; a waiting prompt takes the "
                                    "place of each answer that ends.")
    max_prompt_tokens: int = _f(1536, "Documents whose prompt would exceed this are split at "
                                "sentence ends into pieces (counted), never truncated.")
    repeat_patience: int = _f(DEFAULT_REPEAT_PATIENCE, "End an answer after this many lines "
                              "in a row that repeat earlier ones (a greedy loop, which would "
                              "run to --max-new-tokens); 0: never.")
    constrained: bool = _f(False, "Constrained decoding: entity strings may only copy "
                           "substrings of the input text.")

    def __post_init__(self) -> None:
        checks = [
            (self.lora_r > 0, "lora_r", "must be > 0"),
            (self.lora_alpha > 0, "lora_alpha", "must be > 0"),
            (0 <= self.lora_dropout < 1, "lora_dropout", "must be in [0, 1)"),
            (bool(self.lora_targets), "lora_targets", "must name at least one module"),
            (self.max_length >= 16, "max_length", "must be at least 16"),
            (self.epochs > 0, "epochs", "must be > 0"),
            (self.max_steps is None or self.max_steps > 0, "max_steps", "must be > 0"),
            (self.batch_size > 0, "batch_size", "must be > 0"),
            (self.grad_accum > 0, "grad_accum", "must be > 0"),
            (self.learning_rate > 0, "learning_rate", "must be > 0"),
            (self.warmup >= 0, "warmup", "must be >= 0"),
            (self.eval_steps is None or self.eval_steps > 0, "eval_steps", "must be > 0"),
            (self.logging_steps > 0, "logging_steps", "must be > 0"),
            (self.eval_sample is None or self.eval_sample >= 0, "eval_sample", "must be >= 0"),
            (self.max_new_tokens > 0, "max_new_tokens", "must be > 0"),
            (self.predict_batch_size > 0, "predict_batch_size", "must be > 0"),
            (self.repeat_patience >= 0, "repeat_patience", "must be >= 0"),
            (self.max_prompt_tokens >= 32, "max_prompt_tokens", "must be at least 32"),
            (self.train_piece_tokens is None or self.train_piece_tokens >= 32,
             "train_piece_tokens", "must be at least 32"),
            (self.quantize in (None, "4bit"), "quantize", "must be 4bit or left out"),
        ]
        self.check(checks)
        from medner.backends.prompted.prompts import get_template

        get_template(self.template)  # unknown names fail at config time, not after loading



field_help = LLMConfig.field_help
field_types = LLMConfig.field_types
defaults = LLMConfig.defaults
coerce_config = LLMConfig.coerce
load_config = LLMConfig.load


__all__ = ["DEFAULT_REPEAT_PATIENCE", "DEFAULT_TARGETS", "LLMConfig", "coerce_config",
           "defaults", "field_help", "field_types", "load_config"]
