"""Span <-> word-tag alignment, constrained decoding and window merging (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from medner.backends.encoder.align import (
    AlignmentReport,
    Tokenized,
    tag_names,
    tags_to_word_spans,
    word_spans_to_spans,
    word_tags,
)
from medner.backends.encoder.decode import Decoder, allowed_transitions
from medner.backends.encoder.windows import make_windows, merge_windows, window_words
from medner.document import Document, Span


def words_of(text: str) -> Tokenized:
    """One token per whitespace-separated word (enough to test the logic)."""
    spans, pos = [], 0
    for w in text.split(" "):
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    n = len(spans)
    return Tokenized(list(range(n)), list(range(n)), spans, list(range(n)))


def subword_tok(text: str, pieces_per_word: int) -> Tokenized:
    """Every word split into ``pieces_per_word`` sub-tokens."""
    base = words_of(text)
    ids, token_word, firsts = [], [], []
    for w in range(len(base.word_spans)):
        firsts.append(len(ids))
        for _ in range(pieces_per_word):
            token_word.append(w)
            ids.append(len(ids))
    return Tokenized(ids, token_word, base.word_spans, firsts)


def span(text: str, mention: str, label: str, nth: int = 0) -> Span:
    start = -1
    for _ in range(nth + 1):
        start = text.index(mention, start + 1)
    return Span(start, start + len(mention), label, mention)


TEXT = "she had cerebral malaria and high fever"


def test_tag_names() -> None:
    assert tag_names(["A"], "BIO") == ["O", "B-A", "I-A"]
    assert tag_names(["A", "B"], "BILOU")[:5] == ["O", "B-A", "I-A", "L-A", "U-A"]


@pytest.mark.parametrize(
    ("scheme", "expected"),
    [
        ("BIO", ["O", "O", "B-DISEASE", "I-DISEASE", "O", "O", "B-SYMPTOM"]),
        ("BILOU", ["O", "O", "B-DISEASE", "L-DISEASE", "O", "O", "U-SYMPTOM"]),
    ],
)
def test_word_tags_schemes(scheme: str, expected: list[str]) -> None:
    doc = Document("d", TEXT, (span(TEXT, "cerebral malaria", "DISEASE"),
                               span(TEXT, "fever", "SYMPTOM")))
    report = AlignmentReport()
    tags = word_tags(doc, words_of(TEXT), scheme, "expand", report)
    assert tags == expected
    assert report.counts["aligned"] == 2 and report.misaligned == 0
    assert tags_to_word_spans(tags) == [(2, 3, "DISEASE"), (6, 6, "SYMPTOM")]


def test_misaligned_spans_are_counted_per_policy() -> None:
    # "malari" ends inside the word "malaria"; "h fever" starts inside "high".
    doc = Document("d", TEXT, (Span(17, 23, "DISEASE", "malari"),
                               Span(32, 39, "SYMPTOM", "h fever")))
    tok = words_of(TEXT)
    expand, contract, strict = AlignmentReport(), AlignmentReport(), AlignmentReport()
    assert word_tags(doc, tok, "BIO", "expand", expand)[3] == "B-DISEASE"
    assert expand.misaligned == 2 and expand.counts["edge inside a word (expanded)"] == 2
    tags = word_tags(doc, tok, "BIO", "contract", contract)
    assert tags[3] == "O" and tags[5:] == ["O", "B-SYMPTOM"]
    assert contract.counts["edge inside a word (contracted)"] == 1
    assert contract.counts["edge inside a word (dropped, nothing left to contract to)"] == 1
    assert set(word_tags(doc, tok, "BIO", "strict", strict)) == {"O"}
    assert strict.counts["edge inside a word (dropped, strict)"] == 2
    assert "examples" in strict.to_dict() and strict.summary().startswith("0/2")


def test_overlapping_span_is_dropped_and_counted() -> None:
    doc = Document("d", TEXT, (span(TEXT, "cerebral malaria", "DISEASE"),
                               span(TEXT, "malaria", "DISEASE")))
    report = AlignmentReport()
    word_tags(doc, words_of(TEXT), "BIO", "expand", report)
    assert report.counts["overlaps an earlier span (dropped)"] == 1


def test_word_spans_to_spans_uses_original_text() -> None:
    tok = words_of(TEXT)
    (s,) = word_spans_to_spans(TEXT, tok, [(2, 3, "DISEASE")], [0.9])
    assert (s.start, s.end, s.text, s.score) == (8, 24, "cerebral malaria", 0.9)


@pytest.mark.parametrize("scheme", ["BIO", "BILOU"])
def test_viterbi_only_returns_valid_sequences(scheme: str) -> None:
    tags = tag_names(["A", "B"], scheme)
    decoder = Decoder(tags, scheme)
    rng = np.random.default_rng(0)
    start, trans, end = allowed_transitions(tags, scheme)
    for _ in range(50):
        lp = np.log(rng.dirichlet(np.ones(len(tags)), size=12))
        path = [tags.index(t) for t in decoder.decode(lp)]
        assert start[path[0]] == 0 and end[path[-1]] == 0
        assert all(trans[a, b] == 0 for a, b in zip(path, path[1:], strict=False))


def test_viterbi_repairs_a_fragment_argmax_would_emit() -> None:
    tags = tag_names(["Disease"], "BIO")  # O, B, I
    # argmax: O I I  (invalid); the best valid path is B I I.
    lp = np.log(np.array([[0.5, 0.4, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]]))
    assert Decoder(tags, "BIO").decode(lp) == ["B-Disease", "I-Disease", "I-Disease"]
    assert Decoder(tags, "BIO", constrained=False).decode(lp)[0] == "O"


def test_saved_transition_scores_change_the_path_only_among_valid_ones() -> None:
    """Folders trained with the removed CRF option keep their learned scores in medner.json;
    the decoder still adds them to the masks."""
    tags = ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"]
    learned = {"start": [0.0] * 5, "end": [0.0] * 5,
               "transitions": np.zeros((5, 5)).tolist()}
    learned["transitions"][1][2] = 5.0  # B-Chemical -> I-Chemical strongly preferred
    emissions = np.log(np.array([[0.1, 0.8, 0.02, 0.06, 0.02],
                                 [0.6, 0.1, 0.2, 0.05, 0.05]]))
    assert Decoder(tags, "BIO").decode(emissions) == ["B-Chemical", "O"]
    assert Decoder(tags, "BIO", learned=learned).decode(emissions) == ["B-Chemical",
                                                                        "I-Chemical"]
    # a forbidden move (O -> I-Chemical) stays forbidden whatever was learned
    learned["transitions"] = np.zeros((5, 5)).tolist()
    learned["transitions"][0][2] = 50.0
    emissions = np.log(np.array([[0.9, 0.025, 0.025, 0.025, 0.025],
                                 [0.1, 0.1, 0.6, 0.1, 0.1]]))
    assert Decoder(tags, "BIO", learned=learned).decode(emissions) == ["O", "O"]


def test_windows_cover_every_token_and_cut_at_word_starts() -> None:
    tok = subword_tok(" ".join(f"w{i}" for i in range(50)), 3)  # 150 tokens
    windows = make_windows(tok, 20, 6)
    covered = set()
    for s, e in windows:
        assert e - s <= 20
        assert s in tok.word_first_token
        covered.update(range(s, e))
    assert covered == set(range(150))
    assert all(b[0] < a[1] for a, b in zip(windows, windows[1:], strict=False))  # overlap
    assert make_windows(subword_tok("a b", 1), 20, 6) == [(0, 2)]
    assert make_windows(Tokenized([], [], [], []), 20, 6) == []


def test_a_word_longer_than_a_window_is_split_not_dropped() -> None:
    tok = subword_tok("a b c", 30)
    windows = make_windows(tok, 16, 4)
    assert set().union(*(range(s, e) for s, e in windows)) == set(range(90))


@pytest.mark.parametrize("mode", ["center", "mean"])
def test_merge_recovers_an_entity_across_a_window_border(mode: str) -> None:
    text = " ".join(["x"] * 9 + ["big", "bad", "disease"] + ["x"] * 9)
    tok = words_of(text)
    tags = tag_names(["D"], "BIO")
    gold = ["O"] * 9 + ["B-D", "I-D", "I-D"] + ["O"] * 9
    windows = make_windows(tok, 11, 4)
    assert any(s < 10 < e < 12 for s, e in windows)  # some window cuts the entity
    window_lp = []
    for s, e in windows:
        a, b = window_words(tok, s, e)
        lp = np.full((b - a, 3), np.log(0.05))
        for row, w in enumerate(range(a, b)):
            # a window that starts inside the entity sees "I" words without their "B":
            # it is unsure there, and confident in its interior.
            lp[row, tags.index(gold[w])] = np.log(0.9 if w - s >= 2 or s == 0 else 0.4)
        window_lp.append(lp)
    merged = merge_windows(tok, windows, window_lp, 3, mode)
    decoded = Decoder(tags, "BIO").decode(merged)
    assert tags_to_word_spans(decoded) == [(9, 11, "D")]


def test_join_fragments_joins_only_same_type_neighbours_one_space_apart() -> None:
    from medner.backends.encoder.predict import join_fragments

    text = "iron dextran, cocaine  heroin (HER) and Hemorrhagic cystitis"
    # words by hand: the comma and the parentheses are words of their own, as in BERT
    bounds = [(0, 4), (5, 12), (12, 13), (14, 21), (23, 29), (30, 31), (31, 34), (34, 35),
              (36, 39), (40, 51), (52, 60)]
    tok = Tokenized(list(range(len(bounds))), list(range(len(bounds))), bounds,
                    list(range(len(bounds))))
    found = [(0, 0, "Chemical"), (1, 1, "Chemical"),   # "iron" "dextran": one name
             (3, 3, "Chemical"), (4, 4, "Chemical"),   # two spaces apart: kept apart
             (6, 6, "Chemical"),                       # "(HER)": punctuation between
             (9, 9, "Chemical"), (10, 10, "Disease")]  # different types: kept apart
    joined = join_fragments(text, tok, found)
    assert [text[bounds[a][0]:bounds[b][1]] for a, b, _ in joined] == [
        "iron dextran", "cocaine", "heroin", "HER", "Hemorrhagic", "cystitis"]
    assert join_fragments(text, tok, []) == []


def test_join_fragments_chains_several_pieces() -> None:
    from medner.backends.encoder.predict import join_fragments

    text = "low molecular weight heparin"
    tok = words_of(text)
    found = [(0, 0, "Chemical"), (1, 2, "Chemical"), (3, 3, "Chemical")]
    assert join_fragments(text, tok, found) == [(0, 3, "Chemical")]


def test_trim_punctuation_drops_edge_punctuation_words_only() -> None:
    from medner.backends.encoder.predict import trim_punctuation

    text = "tumors ( ciprofloxacin - induced ) , PGE ( 2 ) -"
    tok = words_of(text)
    found = [(0, 1, "Disease"),      # "tumors (" -> "tumors"
             (2, 3, "Chemical"),     # "ciprofloxacin -" -> "ciprofloxacin"
             (5, 6, "Chemical"),     # ") ," -> nothing left: dropped
             (7, 10, "Chemical"),    # "PGE ( 2 )": brackets inside are kept
             (11, 11, "Chemical")]   # "-" alone: dropped
    assert trim_punctuation(text, tok, found) == [(0, 0, "Disease"), (2, 2, "Chemical"),
                                                  (7, 10, "Chemical")]
