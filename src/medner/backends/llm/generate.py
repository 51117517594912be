"""Batched greedy decoding with the KV cache, optionally constrained to copy the input, with
a stop for answers that loop over their own lines.

The decoding loop is written here rather than left to ``model.generate``: ``generate`` keeps
every row of a batch in the forward pass until the last row ends, and the copy constraint
and loop check keep running on the finished ones. Answers here differ a lot in length (a
loop stop ends most of them early), so the loop drops each row from the batch, the KV cache
and the attention mask as soon as it ends.
"""

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
    """Answers ended in a loop over their own lines (see ``repeat_cut``)."""
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
    (``repeat_cut``).
    """
    import contextlib

    import torch

    from medner.backends.llm.constrained import CopyConstraint

    stats = GenerationStats(prompts=len(prompts))
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    answers: list[str] = [""] * len(prompts)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
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
    decoder = _GreedyDecoder(model, tokenizer, max_new_tokens, repeat_patience)
    try:
        for batch in batches:
            width = max(len(encoded[i]) for i in batch)
            ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):
                seq = encoded[i]
                ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
                mask[row, width - len(seq):] = 1
            constraint = None
            if copy_inputs is not None:
                constraint = CopyConstraint(tokenizer, [copy_inputs[i][0] for i in batch],
                                            [copy_inputs[i][1] for i in batch], vocab_size,
                                            tokenizer.eos_token_id)
            started = time.perf_counter()
            with torch.inference_mode(), autocast:
                tokens, endings = decoder(ids.to(model.device), mask.to(model.device),
                                          constraint)
            elapsed = time.perf_counter() - started
            stats.seconds += elapsed
            stats.batch_seconds.append(elapsed)
            for row, i in enumerate(batch):
                stats.repeat_stops += endings[row] == _REPEAT
                stats.truncated += endings[row] == _TRUNCATED
                stats.new_tokens += len(tokens[row])
                stats.prompt_tokens += len(encoded[i])
                answers[i] = tokenizer.decode(tokens[row], skip_special_tokens=True)
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


_EOS, _REPEAT, _TRUNCATED = "end-of-sequence", "loop stop", "max_new_tokens"


class _GreedyDecoder:
    """Greedy decoding of one left-padded batch with a KV cache; each row leaves the batch
    when it ends (end-of-sequence, a loop stop, or ``max_new_tokens``)."""

    def __init__(self, model, tokenizer, max_new_tokens: int, repeat_patience: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.repeat_patience = repeat_patience
        self.eos = tokenizer.eos_token_id
        self.newline_ids = newline_token_ids(tokenizer) if repeat_patience > 0 else frozenset()
        # The prompt pass needs only the last position's logits; models whose forward lacks
        # ``logits_to_keep`` (as ``generate`` checks it) return them all.
        supported = getattr(model, "_supports_logits_to_keep", lambda: False)()
        self.last_logits_only = {"logits_to_keep": 1} if supported else {}

    def __call__(self, ids, mask, constraint) -> tuple[list[list[int]], list[str]]:
        """Each row's new tokens (its end-of-sequence token included) and how it ended."""
        import torch
        from transformers import DynamicCache

        rows = ids.shape[0]
        tokens: list[list[int]] = [[] for _ in range(rows)]
        endings = [_TRUNCATED] * rows
        active = list(range(rows))  # the batch rows still decoding, in cache order
        cache = DynamicCache(config=self.model.config)
        # positions count real tokens only, as ``generate`` does for left padding
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                            cache=cache, use_cache=True, **self.last_logits_only).logits
        positions = positions[:, -1:]
        while True:
            scores = logits[:, -1, :].float()
            if constraint is not None:
                for slot, row in enumerate(active):
                    constraint.restrict(row, tokens[row], scores[slot])
            chosen = scores.argmax(-1).tolist()
            keep = []
            for slot, (row, token) in enumerate(zip(active, chosen, strict=True)):
                tokens[row].append(token)
                ending = self._ending(tokens[row])
                if ending is None:
                    keep.append(slot)
                else:
                    endings[row] = ending
            if not keep:
                return tokens, endings
            if len(keep) < len(active):
                index = torch.tensor(keep, device=ids.device)
                cache.batch_select_indices(index)
                mask, positions = mask[index], positions[index]
                active = [active[slot] for slot in keep]
            mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
            positions = positions + 1
            next_ids = torch.tensor([[chosen[slot]] for slot in keep], device=ids.device)
            logits = self.model(input_ids=next_ids, attention_mask=mask, position_ids=positions,
                                cache=cache, use_cache=True).logits

    def _ending(self, answer: list[int]) -> str | None:
        """How ``answer`` ends with its latest token, or None while it goes on."""
        if answer[-1] == self.eos:
            return _EOS
        if answer[-1] in self.newline_ids and repeat_cut(
                self.tokenizer.decode(answer, skip_special_tokens=True),
                self.repeat_patience) is not None:
            return _REPEAT
        return _TRUNCATED if len(answer) >= self.max_new_tokens else None


__all__ = ["GenerationStats", "encode_prompt", "generate",
           "newline_token_ids", "repeat_cut"]
