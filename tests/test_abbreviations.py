"""Abbreviation definitions (Schwartz & Hearst) and label propagation to short forms."""

from __future__ import annotations

import pytest

from medner.abbreviations import find_abbreviations, propagate_abbreviations
from medner.document import Document, Span


def pairs(text: str) -> list[tuple[str, str]]:
    return [(text[a.long[0]:a.long[1]], text[a.short[0]:a.short[1]])
            for a in find_abbreviations(text)]


@pytest.mark.parametrize(("text", "expected"), [
    ("Rats given puromycin aminonucleoside (PAN) developed proteinuria.",
     [("puromycin aminonucleoside", "PAN")]),
    ("Valproic acid (VPA) and 5-fluorouracil (5-FU) were compared.",
     [("Valproic acid", "VPA"), ("5-fluorouracil", "5-FU")]),
    # the short form ends at a semicolon; the first letter must start a word
    ("Patients with acute renal failure (ARF; n = 12) were excluded.",
     [("acute renal failure", "ARF")]),
    # the long form does not reach back over a sentence end
    ("It was given. Blood pressure (BP) fell.", [("Blood pressure", "BP")]),
    # one capital letter: "T" in later sentences means testosterone
    ("Rats received testosterone (T) daily.", [("testosterone", "T")]),
])
def test_definitions_are_found_with_offsets(text, expected):
    assert pairs(text) == expected


@pytest.mark.parametrize("text", [
    "The dose (10 mg) was low.",          # no letter that could abbreviate anything
    "Mice (n = 8) were treated.",          # "n" alone: a lower-case letter is too short
    "Two groups (a) and (b) were formed.",  # list markers
    "It rose sharply (p < 0.05).",         # not an abbreviation
    "Serum levels (XYZ) were low.",        # its letters are not in the words before it
])
def test_parentheses_that_define_nothing(text):
    assert pairs(text) == []


def test_a_predicted_long_form_labels_every_use_of_its_short_form():
    text = ("Valproic acid (VPA) caused hepatotoxicity. VPA levels rose, and VPA-treated "
            "rats (VPAX) lost weight.")
    long = Span(0, 13, "Chemical", "Valproic acid", score=0.9)
    doc = Document("d", text, spans=(long, Span(20, 34, "Disease", "hepatotoxicity")))
    out = propagate_abbreviations(doc)
    added = [(s.start, s.end, s.label) for s in out.spans if s not in doc.spans]
    starts = [i for i in range(len(text)) if text.startswith("VPA", i)]
    # the definition, "VPA levels" and "VPA-treated"; not inside the word "VPAX"
    assert added == [(starts[0], starts[0] + 3, "Chemical"), (starts[1], starts[1] + 3,
                     "Chemical"), (starts[2], starts[2] + 3, "Chemical")]
    assert all(s in out.spans for s in doc.spans)
    assert {s.score for s in out.spans if s.text == "VPA"} == {0.9}  # the long form's score


def test_nothing_is_added_without_a_predicted_long_form_or_over_a_span():
    text = "Valproic acid (VPA) was given; VPA toxicity followed."
    assert propagate_abbreviations(Document("d", text)).spans == ()
    taken = Span(31, 43, "Disease", "VPA toxicity")
    doc = Document("d", text, spans=(Span(0, 13, "Chemical", "Valproic acid"), taken))
    out = propagate_abbreviations(doc)
    assert [s.text for s in out.spans] == ["Valproic acid", "VPA", "VPA toxicity"]


def test_a_short_form_defined_with_two_labels_is_left_alone():
    text = "Cocaine (CO) and carbon monoxide (CO) differ; CO was measured."
    doc = Document("d", text, spans=(Span(0, 7, "Chemical", "Cocaine"),
                                     Span(17, 32, "Disease", "carbon monoxide")))
    assert propagate_abbreviations(doc) == doc


def test_a_short_form_tagged_with_another_label_takes_the_long_forms():
    text = "Rubella antibody (RA) was low; RA rose later."
    doc = Document("d", text, spans=(Span(0, 16, "Disease", "Rubella antibody"),
                                     Span(18, 20, "Chemical", "RA")))
    out = propagate_abbreviations(doc)
    assert [(s.text, s.label) for s in out.spans] == [
        ("Rubella antibody", "Disease"), ("RA", "Disease"), ("RA", "Disease")]
