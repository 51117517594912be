"""Batched greedy decoding with the KV cache, optionally constrained to copy the input, with
a stop for answers that loop over their own lines."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from medner.backends.llm.prompts import CopyRegion


@dataclass
class GenerationStats:
    prompts: int = 0
    prompt_tokens: int = 0
    new_tokens: int = 0
    seconds: float = 0.0
    truncated: int = 0
    """Answers that hit ``max_new_tokens`` before end-of-sequence (parsed as far as they go)."""
    repeat_stops: int = 0
    """Answers ended in a loop over their own lines (``RepeatedLineStop``)."""
    constrained_steps: int = 0
    forced_exits: int = 0
    """Constrained steps where no copy could continue, so the item was closed."""
    batch_seconds: list[float] = field(default_factory=list)

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0

    def add(self, other: GenerationStats) -> None:
        self.prompts += other.prompts
        self.prompt_tokens += other.prompt_tokens
        self.new_tokens += other.new_tokens
        self.seconds += other.seconds
        self.truncated += other.truncated
        self.repeat_stops += other.repeat_stops
        self.constrained_steps += other.constrained_steps
        self.forced_exits += other.forced_exits

    def to_dict(self) -> dict[str, float | int]:
        return {"prompts": self.prompts, "prompt_tokens": self.prompt_tokens,
                "new_tokens": self.new_tokens, "seconds": round(self.seconds, 2),
                "tokens_per_second": round(self.tokens_per_second, 2),
                "truncated": self.truncated, "repeat_stops": self.repeat_stops,
                "constrained_steps": self.constrained_steps,
                "forced_exits": self.forced_exits}


class RepeatedLineStop:
    """A stopping criterion that ends an answer once it is looping over its own lines.

    Every template's answer lists distinct lines (one entity, pair or list item each). A
    small model often repeats a line and then goes on with new ones, but ``patience`` repeats
    in a row mean greedy decoding has entered a loop, which would otherwise run on to
    ``max_new_tokens`` and hold up its whole batch. Only rows whose last token holds a
    newline are decoded, so the check costs little per step. It has the call signature of
    transformers' ``StoppingCriteria`` without subclassing it, so that importing this module
    does not import transformers.
    """

    def __init__(self, tokenizer, prompt_width: int, patience: int) -> None:
        self.tokenizer = tokenizer
        self.prompt_width = prompt_width
        self.patience = patience
        self.newline_ids = newline_token_ids(tokenizer)
        self.stopped: set[int] = set()

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for row in range(input_ids.shape[0]):
            if int(input_ids[row, -1]) not in self.newline_ids:
                continue
            text = self.tokenizer.decode(input_ids[row, self.prompt_width:],
                                         skip_special_tokens=True)
            if repeat_cut(text, self.patience) is not None:
                done[row] = True
                self.stopped.add(row)
        return done


def repeat_cut(text: str, patience: int) -> int | None:
    """The end of the first run of ``patience`` complete lines in a row that each repeat an
    earlier line of ``text`` (blank lines aside), or None when there is no such run."""
    seen: set[str] = set()
    run = position = 0
    for line in text.split("\n")[:-1]:  # the last piece is not a complete line yet
        position += len(line) + 1
        key = line.strip()
        if not key:
            continue
        if key in seen:
            run += 1
            if run >= patience:
                return position
        else:
            run = 0
            seen.add(key)
    return None


def newline_token_ids(tokenizer) -> frozenset[int]:
    """Ids of the vocabulary's tokens whose text holds a newline (cached per tokenizer)."""
    cached = getattr(tokenizer, "_medner_newline_ids", None)
    if cached is None:
        size = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(size)])
        cached = frozenset(i for i, t in enumerate(texts) if "\n" in t)
        tokenizer._medner_newline_ids = cached
    return cached


def encode_prompt(tokenizer, prompt: str) -> list[int]:
    """Prompt token ids, exactly as in training (``train.build_examples`` uses this too)."""
    return list(tokenizer(prompt)["input_ids"])


def generate(model, tokenizer, prompts: Sequence[str], *, max_new_tokens: int, batch_size: int,
             bf16: bool = False, copy_inputs: Sequence[tuple[str, Sequence[CopyRegion]]] | None
             = None, repeat_patience: int = 0, progress: bool = False
             ) -> tuple[list[str], GenerationStats]:
    """Greedy answers for ``prompts`` (same order), decoded without special tokens.

    Prompts are batched by length (longest first) and left-padded. ``copy_inputs[i]`` =
    (input text, copy regions) turns on constrained decoding for prompt ``i``.
    ``repeat_patience`` > 0 ends an answer after that many repeated lines in a row
    (``RepeatedLineStop``).
    """
    import contextlib

    import torch
    from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

    from medner.backends.llm.constrained import CopyConstraint

    stats = GenerationStats(prompts=len(prompts))
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    answers: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = tokenizer.eos_token_id
    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                              use_cache=True, pad_token_id=pad, eos_token_id=eos,
                              bos_token_id=tokenizer.bos_token_id)
    vocab_size = model.get_output_embeddings().weight.shape[0]
    batches = [order[k:k + batch_size] for k in range(0, len(order), batch_size)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(prompts), desc="generate", unit="prompt")
    was_training = model.training
    model.eval()
    fp32 = next(model.parameters()).dtype == torch.float32
    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16 and fp32
                else contextlib.nullcontext())
    try:
        for batch in batches:
            width = max(len(encoded[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                seq = encoded[i]
                ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                mask[row, width - len(seq):] = 1
            processors = LogitsProcessorList()
            constraint = None
            if copy_inputs is not None:
                constraint = CopyConstraint(tokenizer, [copy_inputs[i][0] for i in batch],
                                            [copy_inputs[i][1] for i in batch], width,
                                            vocab_size, eos)
                processors.append(constraint)
            repeat_stop = (RepeatedLineStop(tokenizer, width, repeat_patience)
                           if repeat_patience > 0 else None)
            stopping = StoppingCriteriaList([repeat_stop] if repeat_stop else [])
            started = time.perf_counter()
            with torch.inference_mode(), autocast:
                out = model.generate(input_ids=ids.to(model.device),
                                     attention_mask=mask.to(model.device),
                                     generation_config=config, logits_processor=processors,
                                     stopping_criteria=stopping)
            elapsed = time.perf_counter() - started
            stats.seconds += elapsed
            stats.batch_seconds.append(elapsed)
            for row, i in enumerate(batch):
                new = out[row, width:].tolist()
                if repeat_stop is not None and row in repeat_stop.stopped:
                    stats.repeat_stops += 1
                    while new and new[-1] in (pad, eos):  # the row's padding after its stop
                        new.pop()
                elif eos is not None and eos in new:
                    new = new[: new.index(eos) + 1]
                elif len(new) >= max_new_tokens:
                    stats.truncated += 1
                while new and new[-1] == pad and pad != eos:
                    new.pop()
                stats.new_tokens += len(new)
                stats.prompt_tokens += len(encoded[i])
                answers[i] = tokenizer.decode(new, skip_special_tokens=True)
            if constraint is not None:
                stats.constrained_steps += constraint.masked_steps
                stats.forced_exits += constraint.forced_exits
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
        if was_training:
            model.train()
    return answers, stats


__all__ = ["GenerationStats", "RepeatedLineStop", "encode_prompt", "generate",
           "newline_token_ids", "repeat_cut"]
