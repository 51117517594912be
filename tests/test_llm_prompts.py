"""Prompt templates: tables of documents -> prompt/target, the tutorial format byte for byte,
chat rendering, and the example configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from medner.backends.llm.config import LLMConfig, load_config
from medner.backends.llm.prompts import render_prompt
from medner.backends.prompted.prompts import TEMPLATES, document_tasks, get_template
from medner.document import Document, Relation, Span
from medner.errors import ConfigError
from medner.io import read_corpus
from medner.io.instruct import build_prompt, relation_pairs
from medner.labels import SCHEMAS, LabelSchema

BC5CDR = SCHEMAS["bc5cdr"]
TEXT = "Lithium caused tremor; lithium also caused polyuria. Tremor resolved."


def _doc() -> Document:
    spans = (Span(0, 7, "Chemical", "Lithium", ids=("D008094",)),
             Span(15, 21, "Disease", "tremor", ids=("D014202",)),
             Span(23, 30, "Chemical", "lithium", ids=("D008094",)),
             Span(43, 51, "Disease", "polyuria", ids=("D011141",)),
             Span(53, 59, "Disease", "Tremor", ids=("D014202",)))
    rels = (Relation("CID", "D008094", "D014202"), Relation("CID", "D008094", "D011141"))
    return Document("d1", TEXT, spans, rels)


class NoChat:
    chat_template = None


@pytest.mark.parametrize("template, task, completion", [
    ("entities-json", "entities-json",
     '[\n{"text": "Lithium", "label": "Chemical"},\n{"text": "tremor", "label": "Disease"},\n'
     '{"text": "lithium", "label": "Chemical"},\n{"text": "polyuria", "label": "Disease"},\n'
     '{"text": "Tremor", "label": "Disease"}\n]'),
    ("entities-lines", "entities-lines",
     "Chemical: Lithium\nDisease: tremor\nChemical: lithium\nDisease: polyuria\nDisease: Tremor"),
    ("tutorial", "diseases", "- tremor\n- polyuria\n- Tremor"),
    ("tutorial", "chemicals", "- Lithium\n- lithium"),
    ("tutorial", "influences", "- Chemical Lithium influences disease tremor\n"
                               "- Chemical Lithium influences disease polyuria"),
    ("relations", "relations",
     '[\n{"chemical": "Lithium", "disease": "tremor"},\n'
     '{"chemical": "Lithium", "disease": "polyuria"}\n]'),
])
def test_completions(template, task, completion):
    tasks = {t.name: t for t in get_template(template).build_tasks(BC5CDR)}
    assert tasks[task].completion(_doc()) == completion


def test_completion_round_trips_through_its_parser():
    doc = _doc()
    for template in TEMPLATES:
        for task in get_template(template).build_tasks(BC5CDR):
            parsed = task.parse(task.completion(doc), BC5CDR)
            assert parsed.bad_lines == 0 and parsed.unknown_labels == 0
            if task.kind == "relations":
                assert parsed.pairs == relation_pairs(doc)
            else:
                assert {e for e in parsed.entities} == {
                    (doc.text[s.start:s.end], s.label) for s in doc.spans
                    if task.label in (None, s.label)}


def test_empty_document_targets():
    empty = Document("e", "Nothing here.")
    tasks = {t.name: t for t in get_template("tutorial").build_tasks(BC5CDR)}
    assert tasks["diseases"].completion(empty) == "- "  # the tutorial's empty list
    assert get_template("entities-json").build_tasks(BC5CDR)[0].completion(empty) == "[]"
    assert get_template("entities-lines").build_tasks(BC5CDR)[0].completion(empty) == "None"


def test_tutorial_prompts_are_the_tutorials_own():
    for task in get_template("tutorial").build_tasks(BC5CDR):
        assert task.user_message(TEXT, BC5CDR) == build_prompt(TEXT, task.name)


def test_label_lists_cover_any_schema():
    schema = SCHEMAS["clinical4"]
    tasks = get_template("label-lists").build_tasks(schema)
    assert [t.label for t in tasks] == list(schema.labels)
    msg = tasks[0].user_message("fever", schema)
    assert "DISEASE" in msg and msg.endswith("List of extracted DISEASE:\n")
    # Disease/Chemical keep the tutorial wording
    assert get_template("label-lists").build_tasks(BC5CDR)[0].user_message("x", BC5CDR) == \
        build_prompt("x", "chemicals")


def test_entities_json_prompt_names_the_schema_labels():
    task = get_template("entities-json").build_tasks(SCHEMAS["clinical4"])[0]
    assert "DISEASE, SYMPTOM, DRUG, BODY_PART" in task.user_message("t", SCHEMAS["clinical4"])


def test_relation_templates_need_chemical_and_disease():
    with pytest.raises(ConfigError, match="needs the labels"):
        get_template("relations").build_tasks(SCHEMAS["ncbi-disease"])
    with pytest.raises(ConfigError, match="unknown prompt template"):
        get_template("nope")
    with pytest.raises(ConfigError, match="unknown prompt template"):
        LLMConfig(template="nope")


def test_span_relations_use_span_text():
    doc = Document("s", "aspirin and ulcer", (Span(0, 7, "Chemical", "aspirin", id="T1"),
                                                Span(12, 17, "Disease", "ulcer", id="T2")),
                   (Relation("CID", "T1", "T2", args="span"),))
    assert relation_pairs(doc) == [("aspirin", "ulcer")]


def test_render_prompt_uses_chat_template_when_there_is_one():
    assert render_prompt(NoChat(), "hello") == "hello\n"

    class Chat:
        chat_template = "x"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            assert not tokenize and add_generation_prompt
            return f"<user>{messages[0]['content']}</user><assistant>"

    assert render_prompt(Chat(), "hi") == "<user>hi</user><assistant>"


def test_tutorial_jsonl_trains_as_is(tmp_path):
    """Records read from the tutorial's JSONL come back as the same prompts and targets;
    an abstract seen only under "influences" is not used to teach entity lists."""
    text = "Cisplatin nephrotoxicity was worse with furosemide."
    other = "Haloperidol led to dyskinesia."
    records = [
        {"prompt": build_prompt(text, "diseases"), "completion": "- nephrotoxicity"},
        {"prompt": build_prompt(text, "chemicals"), "completion": "- Cisplatin\n- furosemide"},
        {"prompt": build_prompt(text, "influences"),
         "completion": "- Chemical Cisplatin influences disease nephrotoxicity"},
        {"prompt": build_prompt(other, "influences"),
         "completion": "- Chemical Haloperidol influences disease dyskinesia"},
    ]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    docs = read_corpus(path).documents
    tasks = get_template("tutorial").build_tasks(BC5CDR)
    rebuilt = [{"prompt": t.user_message(d.text, BC5CDR), "completion": t.completion(d)}
               for d in docs for t in document_tasks(d, tasks)]
    assert rebuilt == records


@pytest.mark.parametrize("path", sorted(Path(__file__).parents[1].glob("configs/llm-*.toml")))
def test_example_configs_load(path):
    config = load_config(path)
    assert config.template in TEMPLATES
    get_template(config.template).build_tasks(SCHEMAS[config.labels] if config.labels
                                              else LabelSchema("x", ("Chemical", "Disease")))


def test_the_shipped_bc5cdr_recipe_decodes_as_published():
    """Its published figures all decode constrained: the config must say so, not a flag."""
    config = load_config(Path(__file__).parents[1] / "configs" / "llm-bc5cdr.toml")
    assert config.constrained is True


def test_config_rejects_bad_values(tmp_path):
    with pytest.raises(ConfigError, match="lora_r"):
        load_config(None, {"lora_r": 0})
    bad = tmp_path / "c.toml"
    bad.write_text('[train]\nbackend = "encoder"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="llm backend"):
        load_config(bad)
    bad.write_text('[train]\nquantize = "8bit"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="quantize"):
        load_config(bad)
    assert load_config(None, {"quantize": "4bit", "lora_targets": "q_proj,v_proj"}
                       ).lora_targets == ("q_proj", "v_proj")
