"""Greedy decoding: rows leave the batch when they end and waiting prompts take their place,
answers match ``model.generate``, and the loop stop ends an answer after ``patience``
repeated lines in a row."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from test_llm_tiny import EOS, PAD, make_tokenizer  # noqa: E402

# Three prompts whose memorised answers end at different steps: a short one, a long one with
# distinct lines, and one that loops over its own line before it ends.
ANSWERS = {
    "Text:\nAspirin and fever.\n": "Chemical: Aspirin\nDisease: fever",
    "Text:\nLithium led to tremor and polyuria after renal failure.\n":
        "Chemical: Lithium\nDisease: tremor\nDisease: polyuria\nDisease: renal failure",
    "Text:\nHaloperidol.\n": "Chemical: Haloperidol\n" * 5 + "Disease: none",
}


@pytest.fixture(scope="module")
def memorised():
    """A tiny Llama trained in code until it answers each prompt of ANSWERS exactly."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tokenizer = make_tokenizer(list(ANSWERS) + list(ANSWERS.values()))
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, bos_token_id=1, eos_token_id=EOS,
                         pad_token_id=PAD, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    rows = [tokenizer(p + a, add_special_tokens=False)["input_ids"] + [EOS]
            for p, a in ANSWERS.items()]
    width = max(len(row) for row in rows)
    ids = torch.tensor([row + [PAD] * (width - len(row)) for row in rows])
    labels = torch.tensor([row + [-100] * (width - len(row)) for row in rows])
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):  # memorised after about 75 steps
        loss = model(input_ids=ids, attention_mask=(labels != -100).long(), labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()
    return model, tokenizer


def _reference(model, tokenizer, prompt: str, max_new_tokens: int) -> list[int]:
    """``model.generate`` on the prompt alone (no padding): the answer decoding must give."""
    import torch

    ids = torch.tensor([tokenizer(prompt)["input_ids"]])
    with torch.inference_mode():
        out = model.generate(input_ids=ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=PAD, eos_token_id=EOS)
    return out[0, ids.shape[1]:].tolist()


def test_batched_answers_equal_generate_on_each_prompt_alone(memorised):
    from medner.backends.llm.generate import generate

    model, tokenizer = memorised
    prompts = list(ANSWERS)
    answers, stats = generate(model, tokenizer, prompts, max_new_tokens=60, batch_size=3)
    for prompt, answer in zip(prompts, answers, strict=True):
        assert answer == ANSWERS[prompt]
        assert answer == tokenizer.decode(_reference(model, tokenizer, prompt, 60),
                                          skip_special_tokens=True)
    assert (stats.truncated, stats.repeat_stops) == (0, 0)
    # the short answers left the batch when they ended: only real tokens are counted
    assert stats.new_tokens == sum(len(_reference(model, tokenizer, p, 60)) for p in prompts)


@pytest.mark.parametrize("joinable", [True, False])
def test_a_waiting_prompt_takes_the_place_of_an_ended_answer(memorised, monkeypatch, joinable):
    """Two places for three prompts: the short answer ends first and the third prompt joins
    the running cache (left-padded to its width); the cache narrows again when the widest
    answer ends. Without joining (a cache that cannot be padded), it waits for both."""
    from medner.backends.llm import generate as module

    model, tokenizer = memorised
    joins = []
    join = module._Running.join
    monkeypatch.setattr(module._Running, "joinable", lambda self: joinable)
    monkeypatch.setattr(module._Running, "join",
                        lambda self, other: joins.append(len(other.keys)) or join(self, other))
    prompts = list(ANSWERS)
    answers, stats = module.generate(model, tokenizer, prompts, max_new_tokens=60,
                                     batch_size=2)
    assert answers == [ANSWERS[p] for p in prompts]
    assert joins == ([1] if joinable else [])
    assert stats.new_tokens == sum(len(_reference(model, tokenizer, p, 60)) for p in prompts)


def test_one_place_decodes_prompts_one_after_another(memorised):
    from medner.backends.llm.generate import generate

    model, tokenizer = memorised
    prompts = list(ANSWERS)
    answers, _ = generate(model, tokenizer, prompts, max_new_tokens=60, batch_size=1)
    assert answers == [ANSWERS[p] for p in prompts]


def test_loop_stop_ends_only_the_looping_answer(memorised):
    from medner.backends.llm.generate import generate

    model, tokenizer = memorised
    prompts = list(ANSWERS)
    answers, stats = generate(model, tokenizer, prompts, max_new_tokens=60, batch_size=3,
                              repeat_patience=2)
    assert answers[0] == ANSWERS[prompts[0]]
    assert answers[1] == ANSWERS[prompts[1]]
    assert answers[2] == "Chemical: Haloperidol\n" * 3  # cut after two repeats in a row
    assert stats.repeat_stops == 1


def test_max_new_tokens_cuts_and_counts(memorised):
    from medner.backends.llm.generate import generate

    model, tokenizer = memorised
    prompts = list(ANSWERS)
    answers, stats = generate(model, tokenizer, prompts, max_new_tokens=4, batch_size=2)
    for prompt, answer in zip(prompts, answers, strict=True):
        reference = _reference(model, tokenizer, prompt, 4)
        assert answer == tokenizer.decode(reference, skip_special_tokens=True)
    assert stats.truncated == 3 and stats.new_tokens == 12


@pytest.mark.parametrize(("text", "patience", "cut"), [
    ("A: x\nB: y\n", 1, None),
    ("A: x\nA: x\nB: y", 1, len("A: x\nA: x\n")),
    ("A: x\nA: x\nB: y\nB: y\nA: x\nC: z\n", 2, len("A: x\nA: x\nB: y\nB: y\nA: x\n")),
    ("A: x\n\nA: x\n", 1, len("A: x\n\nA: x\n")),  # blank lines neither count nor reset
    ("A: x\nA: x", 1, None),  # the repeat is not a complete line yet
    ("A: x\nA: x\nB: y\nA: x\n", 2, None),  # a new line in between starts the count again
])
def test_repeat_cut_table(text, patience, cut):
    from medner.backends.llm.generate import repeat_cut

    assert repeat_cut(text, patience) == cut
