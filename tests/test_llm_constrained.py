"""Constrained decoding only ever lets a copy region hold a substring of the input."""

from __future__ import annotations

import re

import pytest

pytest.importorskip("torch")

from test_llm_tiny import save_tiny_llm  # noqa: E402

from medner.backends.llm import constrained  # noqa: E402
from medner.backends.llm.constrained import CopyConstraint, normalize  # noqa: E402
from medner.backends.llm.generate import generate  # noqa: E402
from medner.backends.prompted.prompts import CopyRegion, get_template  # noqa: E402
from medner.ground import ground  # noqa: E402
from medner.labels import SCHEMAS  # noqa: E402

TEXTS = [
    "Cisplatin caused nephrotoxicity and hearing loss in rats.",
    "Lithium toxicity led to tremor,\u2009polyuria and renal failure.",
    "Haloperidol-induced dyskinesia resolved after withdrawal.",
]
EXTRA = ['[\n{"text": "x", "label": "Chemical"}\n]', "- Chemical x influences disease y\n"]
EVERY_LINE = (CopyRegion(r"(?:^|\n)", "\n"),)  # every answer line is a copy region


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medner.backends.llm.model import prepare_tokenizer

    folder = save_tiny_llm(tmp_path_factory.mktemp("c") / "base", TEXTS + EXTRA)
    tok = AutoTokenizer.from_pretrained(str(folder))
    prepare_tokenizer(tok)
    return AutoModelForCausalLM.from_pretrained(str(folder)), tok


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_model_only_copies_substrings(tiny, seed):
    import torch

    model, tok = tiny
    torch.manual_seed(seed)
    with torch.no_grad():  # a different random model per seed
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    prompts = [f"Copy from: {t}\n" for t in TEXTS]
    free, _ = generate(model, tok, prompts, max_new_tokens=40, batch_size=2)
    answers, stats = generate(model, tok, prompts, max_new_tokens=40, batch_size=2,
                              copy_inputs=[(t, EVERY_LINE) for t in TEXTS])
    assert stats.constrained_steps > 0
    for text, answer in zip(TEXTS, answers, strict=True):
        lines = answer.split("\n")
        for line in lines:
            assert normalize(line).strip() in normalize(text), (line, text)
        for line in lines[:-1]:  # finished lines are whole words: grounding finds them
            assert not line.strip() or ground(line.strip(), text), (line, text)
    # unconstrained, the same random model writes things that are not in the input
    assert any(normalize(line).strip() not in normalize(t)
               for t, a in zip(TEXTS, free, strict=True) for line in a.split("\n"))


def _allowed_strings(tok, constraint, answer):
    constraint.answers[0] = answer
    allowed = constraint.allowed(0)
    # end-of-sequence is checked by id where it matters; its text is not part of a copy
    return None if allowed is None else {tok.decode([i]) for i in allowed
                                         if i != tok.eos_token_id}


def test_json_region_continues_a_copy_or_closes_it(tiny):
    _, tok = tiny
    task = get_template("entities-json").build_tasks(SCHEMAS["bc5cdr"])[0]
    text = TEXTS[0]
    c = CopyConstraint(tok, [text], [task.copy_regions], len(tok), tok.eos_token_id)
    assert _allowed_strings(tok, c, '[\n{"text": "Cis", "label": "') is None   # a label: free
    assert _allowed_strings(tok, c, "[\n") is None
    for s in _allowed_strings(tok, c, '[\n{"text": "Cis'):
        assert normalize(("Cis" + s).split('"')[0]) in text, s
    closing = _allowed_strings(tok, c, '[\n{"text": "Cisplatin')
    assert any(s.startswith('"') for s in closing)
    for s in closing:
        assert normalize(("Cisplatin" + s).split('"')[0]) in text


def test_labelled_line_region_copies_after_the_colon(tiny):
    _, tok = tiny
    task = get_template("entities-lines").build_tasks(SCHEMAS["bc5cdr"])[0]
    text = TEXTS[0]
    c = CopyConstraint(tok, [text], [task.copy_regions], len(tok), tok.eos_token_id)
    assert _allowed_strings(tok, c, "Chem") is None                   # a label: free
    assert _allowed_strings(tok, c, "Chemical: Cisplatin\nDis") is None
    for s in _allowed_strings(tok, c, "Chemical: Cis"):
        assert normalize(("Cis" + s).split("\n")[0]) in text, s
    assert any(s.startswith("\n") for s in _allowed_strings(tok, c, "Chemical: Cisplatin"))
    # the last line may end the answer: end-of-sequence closes a line region too
    c.answers[0] = "Chemical: Cisplatin"
    assert tok.eos_token_id in c.allowed(0)
    c.answers[0] = "Chemical:"
    assert tok.eos_token_id not in c.allowed(0)  # but not before anything was copied


def test_influence_region_must_finish_its_separator(tiny):
    _, tok = tiny
    task = [t for t in get_template("tutorial").build_tasks(SCHEMAS["bc5cdr"])
            if t.name == "influences"][0]
    text = "Lithium toxicity led to tremor."
    c = CopyConstraint(tok, [text], [task.copy_regions], len(tok), tok.eos_token_id)
    started = _allowed_strings(tok, c, "- Chemical Lithium influences")
    assert started and all(" disease".startswith(s) or s.startswith(" disease")
                           for s in started), started
    for s in _allowed_strings(tok, c, "- Chemical Lithium influences disease tre"):
        assert normalize(("tre" + s).split("\n")[0]) in text
    assert _allowed_strings(tok, c, "- Chemical Lithium influences disease tremor\n") is None


def test_whitespace_in_the_input_is_normalised(tiny):
    _, tok = tiny
    text = TEXTS[1]  # has a thin space before "polyuria"
    c = CopyConstraint(tok, [text], [EVERY_LINE], len(tok), tok.eos_token_id)
    assert " " in _allowed_strings(tok, c, "tremor,")
    assert any(s.startswith("p") for s in _allowed_strings(tok, c, "tremor, "))
    assert not any(s.startswith("p") for s in _allowed_strings(tok, c, "tremor,"))


def test_copies_start_and_end_at_word_boundaries(tiny):
    _, tok = tiny
    text = "Cisplatin caused glomerulonephritis in rats (n=36)."
    c = CopyConstraint(tok, [text], [EVERY_LINE], len(tok), tok.eos_token_id)
    openers = {s.lstrip() for s in _allowed_strings(tok, c, "")} - {""}
    assert "C" in openers and "g" in openers and "n" in openers
    assert "p" not in openers and "e" not in openers  # inside "Cisplatin", "glomerulo..."
    for s in openers:
        assert re.search(r"(?<!\w)" + re.escape(s), text) or not re.match(r"\w", s), s
    for part in ("Cis", "glomerulo", "n=3"):  # a copy may not end inside a word
        assert not any(s.startswith("\n") for s in _allowed_strings(tok, c, part)), part
        assert tok.eos_token_id not in c.allowed(0), part
    for whole in ("Cisplatin", "glomerulonephritis", "n=36", "(n=36)."):
        assert any(s.startswith("\n") for s in _allowed_strings(tok, c, whole)), whole
        assert tok.eos_token_id in c.allowed(0), whole


def test_row_index_equals_a_plain_search_of_the_text(tiny, monkeypatch):
    """The set lookups for short vocabulary strings and the search for long ones choose the
    same tokens as searching the text for every vocabulary string."""
    _, tok = tiny
    short = 3  # the tiny vocabulary's strings are short: this sends many down the long path
    monkeypatch.setattr(constrained, "_SHORT", short)
    text = "Cisplatin-induced nephrotoxicity (n=36)\u2009and hearing loss."
    c = CopyConstraint(tok, [text], [EVERY_LINE], len(tok), tok.eos_token_id)
    ntext = normalize(text)
    occurring, opening = [], []
    for tid, s in enumerate(c.vocab.strings):
        if s and s.lstrip() in ntext:
            occurring.append(tid)
            if not s.strip() or constrained._copy_starts(s.lstrip(), ntext):
                opening.append(tid)
    row = c.row(0)
    assert [tid for tid, _ in row.openers] == opening
    assert sorted(tid for bucket in row.by_first.values() for tid, _ in bucket) == occurring
    assert any(len(c.vocab.stripped[tid]) > short for tid in opening)
    assert any(0 < len(c.vocab.stripped[tid]) <= short for tid in opening)
