"""The one path of the prompted backends: documents -> pieces -> prompts -> answers ->
Documents, with the relation a task asks for and the counts both backends report."""

from __future__ import annotations

import json

import pytest

from medner.backends.hosted.model import HostedModel
from medner.backends.llm.model import LLMModel
from medner.backends.prompted.answers import (
    AnswerCounts,
    plan_prompts,
    read_answers,
    text_pieces,
)
from medner.backends.prompted.prompts import RelationType, Task, get_template
from medner.document import Document
from medner.errors import MednerError
from medner.labels import SCHEMAS, LabelSchema

BC5CDR = SCHEMAS["bc5cdr"]
TEXT = "Cisplatin caused nephrotoxicity. Lithium led to tremor.  Tremor resolved."


def words(text: str) -> int:
    return len(text.split())


def sentences(text: str) -> list[tuple[int, int]]:
    return text_pieces(text, words, 5)


def test_pieces_end_at_sentence_ends_fit_and_leave_out_the_spaces_between():
    pieces = sentences(TEXT)
    assert [TEXT[a:b] for a, b in pieces] == ["Cisplatin caused nephrotoxicity.",
                                              "Lithium led to tremor.", "Tremor resolved."]
    assert text_pieces(TEXT, words, 100) == [(0, len(TEXT))]
    assert text_pieces("no sentence end in these seven words", words, 4) == [
        (0, 18), (19, 36)]  # at the space nearest the middle when there is no sentence end


def test_a_piece_that_cannot_fit_is_an_error():
    with pytest.raises(MednerError, match="template alone takes 10 tokens"):
        text_pieces(TEXT, lambda s: 10 + words(s), 9)
    with pytest.raises(MednerError, match="without a space"):
        text_pieces("x" * 50, len, 10)


def test_one_prompt_per_piece_and_task_in_document_piece_task_order():
    tasks = get_template("tutorial").build_tasks(BC5CDR)
    docs = [Document("a", TEXT), Document("b", "Short one.")]
    plan = plan_prompts(docs, tasks, sentences)
    assert [(p.document, p.piece, p.task.name) for p in plan.prompts[:4]] == [
        (0, 0, "diseases"), (0, 0, "chemicals"), (0, 0, "influences"), (0, 1, "diseases")]
    assert len(plan.prompts) == (3 + 1) * 3 and plan.cut_documents == 1
    assert plan.prompts[-1].text == "Short one."
    whole = plan_prompts(docs, tasks)
    assert [p.text for p in whole.prompts[::3]] == [TEXT, "Short one."] and not whole.cut


def test_pieces_are_read_in_their_own_text_and_merged_with_their_offsets():
    (task,) = get_template("entities-lines").build_tasks(BC5CDR)
    doc = Document("a", TEXT, metadata={"source": "s"})
    plan = plan_prompts([doc], [task], sentences)
    answers = ["Chemical: Cisplatin\nDisease: nephrotoxicity", "Disease: tremor\nChemical: gold",
               "Disease: Tremor\nnot a line"]
    (out,), counts = read_answers(plan, answers, BC5CDR, key="llm")
    assert [(s.id, s.text, TEXT[s.start:s.end]) for s in out.spans] == [
        ("T1", "Cisplatin", "Cisplatin"), ("T2", "nephrotoxicity", "nephrotoxicity"),
        ("T3", "tremor", "tremor"), ("T4", "Tremor", "Tremor")]
    assert out.metadata == {"source": "s", "llm": {
        "hallucinations": 1, "hallucinated_relations": 0, "bad_lines": 1, "unknown_labels": 0,
        "chunks": 3}}
    assert counts.notes() == {"llm_hallucinations": 1, "llm_hallucinated_relations": 0,
                              "llm_relation_entities_added": 0, "llm_bad_lines": 1,
                              "llm_unknown_labels": 0}
    (whole,), _ = read_answers(plan_prompts([doc], [task]), ["Disease: tremor"], BC5CDR,
                               key="hosted")
    assert "chunks" not in whole.metadata["hosted"]  # not cut: no piece count
    with pytest.raises(MednerError, match="2 answers given for 3 prompts"):
        read_answers(plan, answers[:2], BC5CDR, key="llm")


def test_relation_sides_link_to_the_entities_of_the_other_tasks_of_their_piece():
    tasks = get_template("entities-json+relations").build_tasks(BC5CDR)
    text = "Lithium led to tremor."
    answers = ['[\n{"text": "Lithium", "label": "Chemical"},\n{"text": "tremor", "label": '
               '"Disease"}\n]', '[\n{"chemical": "lithium", "disease": "tremor"}\n]']
    (out,), counts = read_answers(plan_prompts([Document("a", text)], tasks), answers, BC5CDR,
                                  key="llm")
    assert [(s.id, s.text) for s in out.spans] == [("T1", "Lithium"), ("T2", "tremor")]
    assert [(r.label, r.head, r.tail) for r in out.relations] == [("CID", "T1", "T2")]
    assert counts.relation_entities_added == 0


def test_the_relation_and_its_side_labels_come_from_the_task():
    treats = RelationType("TREATS", "Drug", "Disease")
    schema = LabelSchema("drugs", ("Drug", "Disease"))
    task = Task("relations", "relations", relation=treats)
    text = "Aspirin eased the headache."
    (out,), counts = read_answers(plan_prompts([Document("a", text)], [task]),
                                  ['[{"chemical": "Aspirin", "disease": "headache"}]'], schema,
                                  key="llm")
    by_id = out.span_by_id()
    assert [(r.label, by_id[r.head].label, by_id[r.tail].label) for r in out.relations] == [
        ("TREATS", "Drug", "Disease")]
    assert counts.relation_entities_added == 2


class _Words:
    """A tokenizer without a chat template that counts words: enough to plan prompts."""

    chat_template = None

    def __call__(self, text: str) -> dict[str, list[str]]:
        return {"input_ids": text.split()}


class _Answering(HostedModel):
    """A hosted model whose provider answers from a table, keyed by the prompt's text."""

    def __init__(self, table: dict[tuple[str, str], str], **meta) -> None:
        super().__init__({"provider": "openai", "model": "m", **meta})
        self.table = table

    def answer(self, messages):
        return self.table[messages[-1]["content"]], False


def test_local_and_hosted_models_read_the_same_answers_alike():
    meta = {"template": "tutorial", "schema": BC5CDR.to_dict()}
    docs = [Document("a", TEXT), Document("b", "Haloperidol led to dyskinesia.")]
    completions = {"diseases": "- tremor\n- dyskinesia\n- gout",
                   "chemicals": "- Lithium\n- Haloperidol",
                   "influences": "- Chemical Lithium influences disease tremor\n"
                                 "- Chemical Haloperidol influences disease dyskinesia"}
    hosted = _Answering({}, **meta)
    for doc in docs:
        for task in hosted.tasks:
            hosted.table[task.user_message(doc.text, BC5CDR)] = completions[task.name]
    local = LLMModel(None, _Words(), meta, bf16=False)
    answers = [completions[t.name] for _ in docs for t in local.tasks]
    from_local, from_hosted = local.predict(docs, answers=answers), hosted.predict(docs)
    assert [(d.spans, d.relations) for d in from_local] == [
        (d.spans, d.relations) for d in from_hosted]
    assert {k: v for k, v in local.last_notes.items() if k in hosted.last_notes} == {
        k: v for k, v in hosted.last_notes.items() if k.startswith("llm_")}
    assert hosted.last_notes["llm_hallucinations"] == 6  # 3 items of each are not in its text
    assert from_local[0].metadata["llm"]["chunks"] == 1 and "chunks" not in (
        from_hosted[0].metadata["hosted"])
    assert json.dumps(AnswerCounts().notes())  # plain ints, ready for a report
