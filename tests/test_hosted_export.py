"""Tuning files per provider and their validation (no network, no SDK needed)."""

from __future__ import annotations

import json

import pytest

from medner.backends.hosted.formats import build_examples, to_record, validate
from medner.backends.prompted.prompts import get_template
from medner.cli import main
from medner.document import Document, Span
from medner.labels import get_schema

SCHEMA = get_schema("bc5cdr")


def doc(i: int) -> Document:
    text = f"Patient {i} developed hepatitis after isoniazid."
    spans = [Span(text.index(word), text.index(word) + len(word), label, word)
             for word, label in (("hepatitis", "Disease"), ("isoniazid", "Chemical"))]
    return Document(f"d{i}", text, tuple(spans))


@pytest.fixture(autouse=True)
def wide_console(monkeypatch):
    """Tables print unwrapped, so a problem's text can be looked up."""
    from medner.cli import hosted

    monkeypatch.setattr(hosted.console, "width", 250)


def run(argv, capsys):
    """(exit code, stdout, stderr) of the medner command."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    out = capsys.readouterr()
    return exit_info.value.code, out.out, out.err


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(doc(i).to_dict()) + "\n" for i in range(12)))
    return path


def test_records_use_the_llm_templates_in_each_provider_shape():
    (example,) = build_examples([doc(1)], SCHEMA, "entities-json")
    (task,) = get_template("entities-json").build_tasks(SCHEMA)
    assert example.prompt == task.user_message(doc(1).text, SCHEMA)
    assert example.completion == task.completion(doc(1))
    openai = to_record(example, "openai", system="Be exact.")
    assert [m["role"] for m in openai["messages"]] == ["system", "user", "assistant"]
    cohere = to_record(example, "cohere")
    assert [m["role"] for m in cohere["messages"]] == ["User", "Chatbot"]
    vertex = to_record(example, "vertex", system="Be exact.")
    assert vertex["systemInstruction"] == {"parts": [{"text": "Be exact."}]}
    assert [c["role"] for c in vertex["contents"]] == ["user", "model"]
    assert vertex["contents"][1]["parts"][0]["text"] == example.completion
    legacy = to_record(example, "legacy")
    assert legacy == {"prompt": example.prompt, "completion": example.completion}


def test_tutorial_template_reproduces_the_tutorial_prompt_completion_pairs():
    records = [to_record(e, "legacy") for e in build_examples([doc(1)], SCHEMA, "tutorial")]
    assert records[0]["prompt"].endswith("List of extracted diseases:\n")
    assert records[0]["completion"] == "- hepatitis"
    assert records[1]["completion"] == "- isoniazid"


def test_validation_names_record_and_field():
    good = to_record(build_examples([doc(1)], SCHEMA, "entities-json")[0], "openai")
    bad_role = {"messages": [{"role": "user", "content": "x"}, {"role": "bot", "content": "y"}]}
    empty = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]}
    check = validate([good] * 9 + [bad_role, empty], "openai")
    found = {(p.record, p.field) for p in check.errors}
    assert (10, "messages[1].role") in found
    assert (10, "messages") in found  # does not end with the assistant's answer
    assert (11, "messages[1].content") in found
    assert not any(p.record is not None and p.record <= 9 for p in check.problems)


def test_minimum_examples_and_token_limits():
    record = to_record(build_examples([doc(1)], SCHEMA, "entities-json")[0], "openai")
    too_few = validate([record] * 9, "openai")
    assert any(p.record is None and "at least 10" in p.message for p in too_few.errors)
    assert validate([record] * 9, "openai", validation_set=True).ok
    huge = {"contents": [{"role": "user", "parts": [{"text": "x" * 600_000}]},
                         {"role": "model", "parts": [{"text": "[]"}]}]}
    check = validate([huge], "vertex")
    assert [(p.record, p.field) for p in check.errors] == [(1, "*")]
    assert "131,072" in check.errors[0].message
    turns = {"contents": [{"role": "user", "parts": [{"text": "a"}]},
                          {"role": "user", "parts": [{"text": "b"}]}]}
    fields = {p.field for p in validate([turns], "vertex").errors}
    assert fields == {"contents"}
    assert not validate([record], "cohere").ok  # Cohere needed two conversations


def test_export_command_writes_file_and_prints_table(corpus, tmp_path, capsys):
    out = tmp_path / "out" / "train.openai.jsonl"
    code, printed, _ = run(["hosted", "export", str(corpus), "--provider", "openai", "--out",
                            str(out), "--labels", "bc5cdr"], capsys)
    assert code == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 12
    assert json.loads(lines[0])["messages"][1]["role"] == "assistant"
    assert "12 examples" in printed and "recommends starting with 50" in printed  # a warning


def test_export_command_reports_problems_and_exits_1(corpus, tmp_path, capsys):
    out = tmp_path / "cohere.jsonl"
    assert run(["hosted", "export", str(corpus), "-p", "cohere", "-o", str(out)], capsys)[0] == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(out.read_text() + json.dumps({"messages": [{"role": "user",
                                                               "content": "hi"}]}) + "\n")
    code, printed, _ = run(["hosted", "validate", str(bad), "--provider", "cohere"], capsys)
    assert code == 1
    assert "13" in printed and "'user' is not one of System, User, Chatbot" in printed


def test_unknown_provider_is_an_error(corpus, tmp_path, capsys):
    code, _, err = run(["hosted", "export", str(corpus), "-p", "anthropic", "-o",
                        str(tmp_path / "x")], capsys)
    assert code == 2
    assert "openai, vertex, cohere, legacy" in err
