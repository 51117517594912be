"""A tiny Llama and byte-level BPE tokenizer built in code (no download), shared by the
LLM tests, plus checks that the tiny pieces behave like the real ones where it matters."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("peft")

SPECIALS = ["<pad>", "<s>", "</s>"]
PAD, BOS, EOS = 0, 1, 2


def make_tokenizer(texts: Iterable[str], vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    backend.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>", model_max_length=2048)


def save_tiny_llm(folder: str | Path, texts: Iterable[str], *, seed: int = 0,
                  chat_template: str | None = None, init_range: float = 0.3,
                  hidden_size: int = 64) -> Path:
    """A random 2-layer, 64-hidden Llama and its tokenizer: a ``--base-model`` folder.

    The tests that train it and then predict must give the same answers in fp32 and bf16 on
    any CPU, since ``load`` picks bf16 on CPUs with native bf16 instructions. So the greedy
    choice at each step of a gold answer must win by far more than bf16 rounding moves it:
    ``init_range`` is larger than Llama's 0.02 so that the frozen output layer can give
    confident logits (with 0.02 LoRA reaches 100% token accuracy but the loss stays near
    log(vocab)), yet small enough to keep activations, and so bf16's absolute errors, small.
    Measured on the ``test_llm_train`` fixture: with 32 hidden units and a range of 1.0 the
    narrowest margin was 3.9 logits and bf16 moved margins by up to 2.0 (ATen's dispatch
    alone changed that by a third); with 64 and 0.3, 7.3 against 0.3.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tokenizer = make_tokenizer(texts)
    if chat_template:
        tokenizer.chat_template = chat_template
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=2048, bos_token_id=BOS, eos_token_id=EOS,
                         pad_token_id=PAD, tie_word_embeddings=False,
                         initializer_range=init_range)
    model = LlamaForCausalLM(config)
    out = Path(folder)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def test_tiny_tokenizer_round_trips_text_and_ids():
    text = "Cisplatin-induced nephrotoxicity, with  two spaces and ünïcode."
    tok = make_tokenizer([text])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids) == text
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (BOS, EOS, PAD)
    assert "".join(tok.decode([i]) for i in tok("plain ascii text")["input_ids"]) == \
        "plain ascii text"


def test_tiny_llm_generates(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = save_tiny_llm(tmp_path / "base", ["some words here"])
    model = AutoModelForCausalLM.from_pretrained(str(folder))
    tok = AutoTokenizer.from_pretrained(str(folder))
    ids = torch.tensor([tok("some words")["input_ids"]])
    out = model.generate(input_ids=ids, max_new_tokens=3, do_sample=False, pad_token_id=PAD)
    assert out.shape[1] <= ids.shape[1] + 3
