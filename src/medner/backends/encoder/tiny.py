"""A tiny BERT and WordPiece tokenizer built in code: for tests and offline examples.

No download: the vocabulary is the characters and words of the given texts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_vocab(texts: Iterable[str]) -> list[str]:
    words: set[str] = set()
    chars: set[str] = set()
    for text in texts:
        for w in re.findall(r"\w+|[^\w\s]", text.lower()):
            words.add(w)
            chars.update(w)
    pieces = sorted(chars) + sorted("##" + c for c in chars)
    return SPECIALS + pieces + sorted(words - chars)


def make_tokenizer(vocab: list[str]):
    from tokenizers import BertWordPieceTokenizer
    from transformers import PreTrainedTokenizerFast

    backend = BertWordPieceTokenizer({t: i for i, t in enumerate(vocab)}, lowercase=True)
    return PreTrainedTokenizerFast(tokenizer_object=backend._tokenizer, unk_token="[UNK]",
                                   pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
                                   mask_token="[MASK]", model_max_length=512)


def save_tiny_base(folder: str | Path, texts: Iterable[str], *, hidden: int = 32,
                   layers: int = 2, seed: int = 0) -> Path:
    """Write a randomly initialised 2-layer BERT plus tokenizer: a ``--base-model`` folder."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(seed)
    vocab = tiny_vocab(texts)
    tokenizer = make_tokenizer(vocab)
    config = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden,
                        max_position_embeddings=512, pad_token_id=0)
    model = BertModel(config)
    out = Path(folder)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out
