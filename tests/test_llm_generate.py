"""The repeated-line stop: an answer ends when it completes a line it already wrote."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from test_llm_tiny import make_tokenizer  # noqa: E402

PROMPT = "Extract the entities.\n\nText:\nAspirin and fever.\n"


def stops_after(tokenizer, answer: str) -> list[str]:
    """The answer prefixes (token by token) at which the stop fires."""
    import torch

    from medner.backends.llm.generate import RepeatedLineStop

    prompt = tokenizer(PROMPT, add_special_tokens=False)["input_ids"]
    ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    stop = RepeatedLineStop(tokenizer, len(prompt))
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
    stop = RepeatedLineStop(tokenizer, 0)
    assert stop(torch.tensor([looping, fine]), None).tolist() == [True, False]
    assert stop.stopped == {0}
