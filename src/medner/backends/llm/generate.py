"""Batched greedy decoding with the KV cache, optionally constrained to copy the input, with
a stop for answers that loop over their own lines.

The decoding loop is written here rather than left to ``model.generate``: ``generate`` keeps
every row of a batch in the forward pass until the last row ends, and the copy constraint
and loop check keep running on the finished ones. Answers here differ a lot in length (a
loop stop ends most of them early), so the loop drops each row from the batch, the KV cache
and the attention mask as soon as it ends, and starts a waiting prompt in its place.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from medner.backends.prompted.prompts import CopyRegion
from medner.core.tally import Tally


@dataclass
class GenerationStats(Tally):
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

    @property
    def tokens_per_second(self) -> float:
        return self.new_tokens / self.seconds if self.seconds else 0.0

    def to_dict(self) -> dict[str, float | int]:
        return {**self.counts(), "tokens_per_second": round(self.tokens_per_second, 2)}


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

    At most ``batch_size`` answers decode together, left-padded. Prompts start longest first,
    and each answer that ends gives its place to the next prompt (continuous batching).
    ``copy_inputs[i]`` = (input text, copy regions) turns on constrained decoding for prompt
    ``i``. ``repeat_patience`` > 0 ends an answer after that many repeated lines in a row
    (``repeat_cut``).
    """
    import contextlib

    import torch

    from medner.backends.llm.constrained import CopyConstraint

    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    stats = GenerationStats(prompts=len(prompts))
    encoded = [encode_prompt(tokenizer, p) for p in prompts]
    stats.prompt_tokens = sum(len(seq) for seq in encoded)
    order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
    answers: list[str] = [""] * len(prompts)
    constraint = None
    if copy_inputs is not None:
        vocab_size = model.get_output_embeddings().weight.shape[0]
        constraint = CopyConstraint(tokenizer, [text for text, _ in copy_inputs],
                                    [regions for _, regions in copy_inputs], vocab_size,
                                    tokenizer.eos_token_id)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(prompts), desc="generate", unit="prompt")
    was_training = model.training
    model.eval()
    fp32 = next(model.parameters()).dtype == torch.float32
    autocast = (torch.autocast(model.device.type, dtype=torch.bfloat16) if bf16 and fp32
                else contextlib.nullcontext())
    decoder = _GreedyDecoder(model, tokenizer, max_new_tokens, repeat_patience, constraint)
    started = time.perf_counter()
    try:
        with torch.inference_mode(), autocast:
            for i, tokens, ending in decoder.run([(i, encoded[i]) for i in order], batch_size):
                stats.repeat_stops += ending == _REPEAT
                stats.truncated += ending == _TRUNCATED
                stats.new_tokens += len(tokens)
                answers[i] = tokenizer.decode(tokens, skip_special_tokens=True)
                if bar is not None:
                    bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        if was_training:
            model.train()
    stats.seconds = time.perf_counter() - started
    if constraint is not None:
        stats.constrained_steps = constraint.masked_steps
        stats.forced_exits = constraint.forced_exits
    return answers, stats


_EOS, _REPEAT, _TRUNCATED = "end-of-sequence", "loop stop", "max_new_tokens"


class _GreedyDecoder:
    """Greedy decoding with a KV cache, written here rather than left to ``model.generate``
    (see the module docstring). Each answer leaves the batch, the cache and the attention
    mask when it ends (end-of-sequence, a loop stop, or ``max_new_tokens``), and waiting
    prompts take the free places: their prompt pass runs on its own, then its cache is
    left-padded and joined to the running one."""

    def __init__(self, model, tokenizer, max_new_tokens: int, repeat_patience: int,
                 constraint) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.repeat_patience = repeat_patience
        self.constraint = constraint
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self.newline_ids = newline_token_ids(tokenizer) if repeat_patience > 0 else frozenset()
        # The prompt pass needs only the last position's logits; models whose forward lacks
        # ``logits_to_keep`` (as ``generate`` checks it) return them all.
        supported = getattr(model, "_supports_logits_to_keep", lambda: False)()
        self.last_logits_only = {"logits_to_keep": 1} if supported else {}

    def run(self, prompts: Sequence[tuple[int, list[int]]], batch_size: int
            ) -> Iterator[tuple[int, list[int], str]]:
        """Yield (key, new tokens with the end-of-sequence token, how it ended) for each
        (key, prompt token ids) of ``prompts`` as its answer ends, starting them in order."""
        import torch

        waiting = deque(prompts)
        running: _Running | None = None
        tokens: dict[int, list[int]] = {}
        while waiting or running is not None:
            free = batch_size - (len(running.keys) if running is not None else 0)
            if waiting and free > 0 and (running is None or running.joinable()):
                admitted = [waiting.popleft() for _ in range(min(free, len(waiting)))]
                tokens.update((key, []) for key, _ in admitted)
                started = self._prompt_pass(admitted)
                running = started if running is None else running.join(started)
            scores = running.logits[:, -1, :].float()
            if self.constraint is not None:
                for slot, key in enumerate(running.keys):
                    self.constraint.restrict(key, tokens[key], scores[slot])
            chosen = scores.argmax(-1).tolist()
            keep = []
            for slot, (key, token) in enumerate(zip(running.keys, chosen, strict=True)):
                tokens[key].append(token)
                ending = self._ending(tokens[key])
                if ending is None:
                    keep.append(slot)
                    continue
                if self.constraint is not None:
                    self.constraint.release(key)
                yield key, tokens.pop(key), ending
            if not keep:
                running = None
                continue
            if len(keep) < len(running.keys):
                running.select(keep)
            next_ids = torch.tensor([[chosen[slot]] for slot in keep],
                                    device=running.mask.device)
            running.step(self.model, next_ids)

    def _prompt_pass(self, admitted: list[tuple[int, list[int]]]) -> _Running:
        import torch
        from transformers import DynamicCache

        width = max(len(seq) for _, seq in admitted)
        device = self.model.device
        ids = torch.full((len(admitted), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(admitted), width), dtype=torch.long)
        for row, (_, seq) in enumerate(admitted):
            ids[row, width - len(seq):] = torch.tensor(seq, dtype=torch.long)
            mask[row, width - len(seq):] = 1
        ids, mask = ids.to(device), mask.to(device)
        cache = DynamicCache(config=self.model.config)
        # positions count real tokens only, as ``generate`` does for left padding
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                            cache=cache, use_cache=True, **self.last_logits_only).logits
        return _Running([key for key, _ in admitted], cache, mask, positions[:, -1:],
                        logits[:, -1:, :])

    def _ending(self, answer: list[int]) -> str | None:
        """How ``answer`` ends with its latest token, or None while it goes on."""
        if answer[-1] == self.eos:
            return _EOS
        if answer[-1] in self.newline_ids and repeat_cut(
                self.tokenizer.decode(answer, skip_special_tokens=True),
                self.repeat_patience) is not None:
            return _REPEAT
        return _TRUNCATED if len(answer) >= self.max_new_tokens else None


@dataclass
class _Running:
    """The answers decoding together: their keys (one per cache row), KV cache, attention
    mask (as wide as the cache), the positions of their next tokens, and the latest logits."""

    keys: list[int]
    cache: object
    mask: object
    positions: object
    logits: object

    def joinable(self) -> bool:
        """Whether other rows can be joined to the cache: only plain layers, whose keys and
        values hold every position, can be left-padded (a sliding-window layer cannot)."""
        from transformers.cache_utils import DynamicLayer

        return all(type(layer) is DynamicLayer for layer in self.cache.layers)

    def join(self, other: _Running) -> _Running:
        """These rows followed by ``other``'s, both left-padded to the wider cache.

        transformers has no cache concatenation, so the layers' key and value tensors are
        padded and joined here (the padding is masked out, like a prompt's left padding)."""
        import torch

        width = max(self.mask.shape[1], other.mask.shape[1])
        sequence = -2  # keys and values are (batch, heads, sequence, head size)
        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([_left_pad(mine.keys, width, sequence),
                                   _left_pad(theirs.keys, width, sequence)])
            mine.values = torch.cat([_left_pad(mine.values, width, sequence),
                                     _left_pad(theirs.values, width, sequence)])
        self.mask = torch.cat([_left_pad(self.mask, width, -1), _left_pad(other.mask, width, -1)])
        self.positions = torch.cat([self.positions, other.positions])
        self.logits = torch.cat([self.logits, other.logits])
        self.keys = self.keys + other.keys
        return self

    def select(self, slots: list[int]) -> None:
        """Keep only the rows ``slots``, and cut the columns that are padding in every row
        left (the widest answers may have been the ones that ended)."""
        import torch

        index = torch.tensor(slots, device=self.mask.device)
        self.cache.batch_select_indices(index)
        self.mask, self.positions = self.mask[index], self.positions[index]
        self.keys = [self.keys[slot] for slot in slots]
        first = int(self.mask.any(0).int().argmax())
        if first:
            for layer in self.cache.layers:
                layer.keys = layer.keys[..., first:, :]
                layer.values = layer.values[..., first:, :]
            self.mask = self.mask[:, first:]

    def step(self, model, next_ids) -> None:
        """Feed each row its chosen token."""
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.keys), 1))], dim=1)
        self.positions = self.positions + 1
        self.logits = model(input_ids=next_ids, attention_mask=self.mask,
                            position_ids=self.positions, cache=self.cache,
                            use_cache=True).logits


def _left_pad(tensor, width: int, axis: int):
    """``tensor`` with zeros prepended along ``axis`` up to ``width``."""
    import torch

    missing = width - tensor.shape[axis]
    if missing <= 0:
        return tensor
    shape = list(tensor.shape)
    shape[axis] = missing
    return torch.cat([tensor.new_zeros(shape), tensor], dim=axis)


__all__ = ["GenerationStats", "encode_prompt", "generate",
           "newline_token_ids", "repeat_cut"]
