import pytest
from hypothesis import given
from hypothesis import strategies as st

from medner.document import Document
from medner.errors import ConfigError
from medner.split import check_leak, split_documents


def corpus(n):
    return [Document(f"d{i}", f"abstract number {i}") for i in range(n)]


def test_default_split_is_80_10_10_and_deterministic():
    parts = split_documents(corpus(100), seed=3)
    assert [len(p) for p in parts] == [80, 10, 10]
    assert [[d.id for d in p] for p in parts] == [
        [d.id for d in p] for p in split_documents(corpus(100), seed=3)
    ]
    assert [d.id for d in parts[0]] != [d.id for d in split_documents(corpus(100), seed=4)[0]]


@given(st.integers(min_value=0, max_value=60), st.integers(min_value=0, max_value=1000))
def test_split_partitions_documents_without_leak(n, seed):
    docs = corpus(n) + [Document(f"dup{i}", f"ABSTRACT  number {i}") for i in range(0, n, 7)]
    parts = split_documents(docs, seed=seed)
    assert sorted(d.id for p in parts for d in p) == sorted(d.id for d in docs)
    for i in range(3):
        for j in range(i + 1, 3):
            assert not check_leak(parts[i], parts[j]).leaks


def test_bad_ratios():
    with pytest.raises(ConfigError, match="sum to 1"):
        split_documents(corpus(3), (0.5, 0.6))


def test_check_leak_by_id_and_by_normalised_text():
    a = [Document("1", "Fever in children."), Document("2", "Aspirin and stroke.")]
    b = [
        Document("1", "Something else."),
        Document("9", "fever  in CHILDREN."),
        Document("10", "new"),
    ]
    report = check_leak(a, b)
    assert report.shared_ids == ["1"]
    assert report.shared_texts == [("1", "9")]
    assert (report.leaked_texts_b, report.distinct_texts_b) == (1, 3)
    assert report.leaks


ABSTRACT = ("Naloxone reverses the antihypertensive effect of clonidine in spontaneously "
            "hypertensive rats. The decrease in blood pressure and heart rate produced by "
            "intravenous clonidine was inhibited or reversed by naloxone at low doses.")


def test_check_leak_finds_an_abstract_inside_title_plus_abstract_both_ways():
    titled = Document("227508", "Naloxone and clonidine.  " + ABSTRACT.upper())
    other = Document("5", "An unrelated abstract about aspirin and stroke. " * 5)
    report = check_leak([titled, other], [Document("instruct:1", ABSTRACT)])
    assert report.contained_texts == [("227508", "instruct:1")]
    assert report.leaks and not report.shared_texts
    reverse = check_leak([Document("instruct:1", ABSTRACT)], [other, titled])
    assert reverse.contained_texts == [("instruct:1", "227508")]
    assert reverse.to_dict()["contained_texts"] == 1


def test_check_leak_ignores_short_texts_inside_longer_ones():
    long_doc = Document("1", "The patient had fever. " + ABSTRACT)
    report = check_leak([long_doc], [Document("2", "The patient had fever.")])
    assert report.contained_texts == [] and not report.leaks
