import pytest

from medner.document import Document, Relation, Span
from medner.errors import ConfigError
from medner.labels import SCHEMAS, apply_schema, get_schema, infer_schema


def maccrobat_doc():
    text = "Fever and headache after aspirin; liver mass."
    spans = (
        Span(0, 5, "Sign_symptom", "Fever", id="T1"),
        Span(10, 18, "Sign_symptom", "headache", id="T2"),
        Span(25, 32, "Medication", "aspirin", id="T3"),
        Span(34, 39, "Biological_structure", "liver", id="T4"),
        Span(40, 44, "Lab_value", "mass", id="T5"),
    )
    relations = (
        Relation("MODIFY", "T5", "T4", args="span"),
        Relation("CAUSE", "T3", "T2", args="span"),
    )
    return Document("r1", text, spans, relations)


def test_clinical4_maps_maccrobat_and_counts_what_it_drops():
    (doc,), dropped = apply_schema([maccrobat_doc()], SCHEMAS["clinical4"])
    assert [s.label for s in doc.spans] == ["SYMPTOM", "SYMPTOM", "DRUG", "BODY_PART"]
    assert dropped == {"Lab_value": 1, "relation:MODIFY": 1}
    assert [r.label for r in doc.relations] == ["CAUSE"]


def test_ncbi_classes_collapse_to_disease():
    schema = get_schema("ncbi-disease")
    for label in ("SpecificDisease", "DiseaseClass", "Modifier", "CompositeMention"):
        assert schema.target(label) == "Disease"
    assert schema.target("Chemical") is None


def test_schema_labels_map_to_themselves():
    assert get_schema("clinical4").target("DRUG") == "DRUG"
    assert get_schema("bc5cdr").target("Chemical") == "Chemical"


def test_user_schema_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\nlabels = ["PROBLEM"]\n[map]\nDisease = "PROBLEM"\n')
    schema = get_schema(str(path))
    assert schema.name == "mine" and schema.target("Disease") == "PROBLEM"


@pytest.mark.parametrize(
    "content, message",
    [
        ("labels = []", "labels"),
        ('labels = ["A"]\n[map]\nX = "B"', "not in 'labels'"),
        ('labels = ["A"', "cannot read"),
    ],
)
def test_bad_schema_file_names_the_field(tmp_path, content, message):
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message):
        get_schema(str(path))


def test_unknown_schema_lists_choices():
    with pytest.raises(ConfigError, match="clinical4"):
        get_schema("nope")


def test_infer_schema():
    assert infer_schema([maccrobat_doc()]).labels == (
        "Biological_structure",
        "Lab_value",
        "Medication",
        "Sign_symptom",
    )
