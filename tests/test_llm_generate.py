"""The loop stop: an answer ends after it has repeated ``patience`` of its lines in a row."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from test_llm_tiny import make_tokenizer  # noqa: E402

PROMPT = "Extract the entities.\n\nText:\nAspirin and fever.\n"


def stops_after(tokenizer, answer: str, patience: int = 1) -> list[str]:
    """The answer prefixes (token by token) at which the stop fires."""
    import torch

    from medner.backends.llm.generate import RepeatedLineStop

    prompt = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    stop = RepeatedLineStop(tokenizer, len(prompt), patience)
    fired = []
    for k in range(1, len(ids) + 1):
        if bool(stop(torch.tensor([prompt + ids[:k]]), None)[0]):
            fired.append(tokenizer.decode(ids[:k]))
    return fired


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer([PROMPT, "Chemical: Aspirin\nDisease: fever\nChemical: Aspirin\n"])


def test_stop_fires_at_the_end_of_the_first_repeated_line(tokenizer):
    answer = "Chemical: Aspirin\nDisease: fever\nChemical: Aspirin\nDisease: fever\n"
    fired = stops_after(tokenizer, answer)
    assert fired[0] == "Chemical: Aspirin\nDisease: fever\nChemical: Aspirin\n"


def test_distinct_lines_and_an_unfinished_repeat_never_stop(tokenizer):
    assert stops_after(tokenizer, "Chemical: Aspirin\nDisease: fever\n") == []
    # the same words on a line that is not finished yet, or differing in label, are no repeat
    assert stops_after(tokenizer, "Chemical: Aspirin\nDisease: Aspirin\nChemical: Aspirin") == []


def test_only_the_looping_row_of_a_batch_is_stopped(tokenizer):
    import torch

    from medner.backends.llm.generate import RepeatedLineStop

    looping = tokenizer("A: x\nA: x\n", add_special_tokens=False)["input_ids"]
    fine = tokenizer("A: x\nB: y\n", add_special_tokens=False)["input_ids"]
    assert len(looping) == len(fine)
    stop = RepeatedLineStop(tokenizer, 0, 1)
    assert stop(torch.tensor([looping, fine]), None).tolist() == [True, False]
    assert stop.stopped == {0}


def test_patience_counts_repeated_lines_in_a_row(tokenizer):
    answer = "Chemical: Aspirin\nDisease: fever\nChemical: Aspirin\nDisease: fever\n"
    assert stops_after(tokenizer, answer, patience=2)[0] == answer
    # a repeat followed by a new line starts the count again
    assert stops_after(tokenizer, "A: x\nA: x\nB: y\nA: x\n", patience=2) == []


@pytest.mark.parametrize(("text", "patience", "cut"), [
    ("A: x\nB: y\n", 1, None),
    ("A: x\nA: x\nB: y", 1, len("A: x\nA: x\n")),
    ("A: x\nA: x\nB: y\nB: y\nA: x\nC: z\n", 2, len("A: x\nA: x\nB: y\nB: y\nA: x\n")),
    ("A: x\n\nA: x\n", 1, len("A: x\n\nA: x\n")),  # blank lines neither count nor reset
    ("A: x\nA: x", 1, None),  # the repeat is not a complete line yet
])
def test_repeat_cut_table(text, patience, cut):
    from medner.backends.llm.generate import repeat_cut

    assert repeat_cut(text, patience) == cut
