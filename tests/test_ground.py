"""Grounding listed strings to character offsets."""

import pytest

from medner.ground import find_all, ground, ground_all


@pytest.mark.parametrize("item, text, expected", [
    ("aspirin", "aspirin, then Aspirin and aspirin.", ["aspirin", "aspirin"]),
    ("Aspirin", "aspirin only", ["aspirin"]),  # case-insensitive only when nothing matches exactly
    ("ALS", "ALSO ALS", ["ALS"]),  # word-boundary aware
    ("ALS", "ALSO", []),
    ("liver", "liver-specific", ["liver"]),  # a hyphen is a boundary
    ("8 mg", "8\u2005mg and 8  mg", ["8\u2005mg", "8  mg"]),  # Unicode and repeated spaces
    ("chest pain", "chest\u200bpain", ["chest\u200bpain"]),  # zero-width space
    ("(+)-pentazocine", "x(+)-pentazocine", ["(+)-pentazocine"]),  # regex characters, no boundary
    ("  ", "anything", []),
    ("fever", "no match here", []),
])
def test_ground(item, text, expected):
    assert [text[a:b] for a, b in ground(item, text)] == expected


def test_find_all_offsets_and_case_option():
    assert find_all("ab", "ab AB") == [(0, 2)]
    assert find_all("ab", "ab AB", ignore_case=True) == [(0, 2), (3, 5)]


def test_ground_all_drops_occurrences_inside_longer_items():
    text = "acute liver injury; liver injury; renal failure and acute renal failure"
    found = ground_all(["liver injury", "acute liver injury", "renal failure", "liver injury",
                        "acute renal failure", "absent"], text)
    assert list(found) == ["liver injury", "acute liver injury", "renal failure",
                           "acute renal failure", "absent"]
    assert found["liver injury"] == [(20, 32)]
    assert found["acute liver injury"] == [(0, 18)]
    assert found["renal failure"] == [(34, 47)]
    assert found["absent"] == []


def test_ground_all_keeps_an_item_found_only_inside_a_longer_one():
    found = ground_all(["liver injury", "acute liver injury"], "acute liver injury")
    assert found == {"liver injury": [(6, 18)], "acute liver injury": [(0, 18)]}
