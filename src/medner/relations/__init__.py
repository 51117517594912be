"""Document-level relation extraction between concepts (BC5CDR's chemical-induced disease).

    from medner.relations import RelationModel, train_relations
    model = train_relations(train_docs, out="models/cid")   # spans with IDs, gold relations
    docs = RelationModel.load("models/cid").predict(docs)   # adds Relation("CID", chem, dis)

Every (chemical concept, disease concept) pair of a document is a candidate; the encoder
reads the document once with markers around the mentions, concepts are pooled from their
mentions, and a small head scores each pair (see ``network``). Torch is imported only when
a model is trained or loaded.
"""

from __future__ import annotations

from medner.relations.config import RelationConfig
from medner.relations.model import RelationModel
from medner.relations.train import train_relations

__all__ = ["RelationConfig", "RelationModel", "train_relations"]
