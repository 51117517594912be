"""A trained relation model: ``predict(documents)`` adds concept relations, ``save``/``load``
keep it as a self-describing folder.

The folder: the fine-tuned encoder (``config.json``, ``model.safetensors``) and its tokenizer
as transformers writes them, the pair head (``head.safetensors``), and ``medner.json`` with the
decision threshold, the pair features, the training config and the held-out scores.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from medner.core.device import resolve_bf16, resolve_device
from medner.core.folder import (
    MEDNER_JSON,
    atomic_folder,
    check_stage_folder,
    folder_header,
    loading_weights,
    write_json,
)
from medner.document import Document, Relation
from medner.errors import MednerError
from medner.relations.candidates import FEATURES, DocumentCandidates, document_candidates
from medner.relations.config import RelationConfig
from medner.relations.encoding import EncodedDocument, encode, marker_id

if TYPE_CHECKING:
    from medner.linking.index import ConceptIndex

BACKEND = "relations"
HEAD_FILE = "head.safetensors"
REQUIRED_FILES = ("config.json", "model.safetensors", "tokenizer.json", HEAD_FILE)

PairScores = dict[tuple[str, str], float]


class RelationModel:
    """Scores every (head concept, tail concept) pair of a document; pairs at or above
    ``threshold`` become relations."""

    backend = BACKEND

    def __init__(self, network, tokenizer, config: RelationConfig, threshold: float,
                 record: dict[str, Any] | None = None, *, path: str | None = None,
                 batch_size: int = 8, bf16: bool = False) -> None:
        self.network = network
        self.tokenizer = tokenizer
        self.config = config
        self.threshold = float(threshold)
        self.record = dict(record or {})
        """How the model was trained: base model, data, held-out scores, seconds."""
        self.path = path
        self.batch_size = batch_size
        self.bf16 = bf16
        self.marker = marker_id(tokenizer, config.marker)

    # ------------------------------------------------------------------ predicting

    def candidates(self, document: Document) -> DocumentCandidates:
        return document_candidates(document, self.config.head_label, self.config.tail_label)

    def encode(self, candidates: DocumentCandidates) -> EncodedDocument:
        return encode(self.tokenizer, candidates, self.marker, self.config.max_length - 2,
                      self.config.window_overlap)

    def score_pairs(self, documents: Iterable[Document]) -> list[PairScores]:
        """For each document, the probability of the relation for each candidate pair."""
        import torch

        from medner.relations.network import make_batch

        found = [self.candidates(d) for d in documents]
        scores: list[PairScores] = [{} for _ in found]
        todo = [k for k, c in enumerate(found) if c.pairs]
        # longest first: documents of similar length share a batch, so padding stays small
        todo.sort(key=lambda k: len(found[k].document.text), reverse=True)
        self.network.eval()
        device_type = next(self.network.parameters()).device.type
        with torch.inference_mode(), torch.autocast(device_type, torch.bfloat16,
                                                    enabled=self.bf16):
            for first in range(0, len(todo), self.batch_size):
                chunk = todo[first:first + self.batch_size]
                batch = make_batch([self.encode(found[k]) for k in chunk],
                                   [found[k].features for k in chunk], self.tokenizer,
                                   self.config.max_length - 2, len(FEATURES))
                for k, logits in zip(chunk, self.network(batch), strict=True):
                    probabilities = torch.sigmoid(logits.float()).tolist()
                    scores[k] = dict(zip(found[k].pairs, probabilities, strict=True))
        return scores

    def predict(self, documents: Iterable[Document], *, hierarchy: ConceptIndex | None = None
                ) -> list[Document]:
        """Copies of the documents with the predicted relations; spans are unchanged. Relations
        with another label are kept, earlier ones with this label are replaced. With
        ``hierarchy`` (the linker's concept index), a pair with a broader side than another
        predicted pair that shares its other side is dropped (``most_specific``)."""
        documents = list(documents)
        label = self.config.relation_label
        out = []
        for doc, scores in zip(documents, self.score_pairs(documents), strict=True):
            predicted = [Relation(label, head, tail, "concept")
                         for (head, tail), p in sorted(scores.items()) if p >= self.threshold]
            if hierarchy is not None:
                predicted = most_specific(predicted, hierarchy)
            kept = [r for r in doc.relations if r.label != label]
            out.append(replace(doc, relations=(*kept, *predicted)))
        return out

    # ------------------------------------------------------------------ folder

    def save(self, out: str | Path) -> Path:
        """Write the model folder atomically; returns its path."""
        from safetensors.torch import save_file

        meta = {**folder_header(BACKEND, out), "threshold": self.threshold,
                "features": list(FEATURES), "training_config": self.config.to_dict(),
                "training": self.record}

        def write(folder: Path) -> None:
            self.network.encoder.save_pretrained(str(folder))
            self.tokenizer.save_pretrained(str(folder))
            head = {name: tensor.detach().float().cpu().contiguous()
                    for name, tensor in self.network.head.state_dict().items()}
            save_file(head, str(folder / HEAD_FILE))
            write_json(folder / MEDNER_JSON, meta)

        path = atomic_folder(out, write)
        self.path = str(path)
        return path

    @classmethod
    def load(cls, path: str | Path, *, threads: int | None = None, device: str | None = None,
             bf16: bool | None = None, batch_size: int = 8) -> RelationModel:
        """``device`` (auto, cpu, cuda, ...) places the model (default: auto, a GPU when there
        is one); ``bf16`` defaults to ``MEDNER_PRECISION`` and the device
        (``medner.core.device``)."""
        import torch
        from safetensors.torch import load_file
        from transformers import AutoModel, AutoTokenizer

        folder = Path(path)
        target = resolve_device(device, what=f"model folder {folder}")
        meta = check_folder(folder)
        features = meta.get("features")
        if features != list(FEATURES):
            raise MednerError(f"{folder / MEDNER_JSON}: features {features} differ from this "
                              f"medner's {list(FEATURES)}; retrain the relation model")
        config = RelationConfig.from_dict(meta["training_config"])
        if threads:
            torch.set_num_threads(threads)
        with loading_weights(folder):
            tokenizer = AutoTokenizer.from_pretrained(str(folder))
            encoder = AutoModel.from_pretrained(str(folder))
            head = load_file(str(folder / HEAD_FILE))
        from medner.relations.network import RelationNetwork

        network = RelationNetwork(encoder, len(FEATURES), config.dropout)
        try:
            network.head.load_state_dict(head)
        except RuntimeError as exc:
            raise MednerError(f"{folder / HEAD_FILE}: does not fit the encoder in {folder}: "
                              f"{exc}") from None
        network = network.to(target).eval()
        return cls(network, tokenizer, config, float(meta["threshold"]), meta.get("training"),
                   path=str(folder),
                   batch_size=batch_size, bf16=resolve_bf16(bf16, target))


def most_specific(relations: Sequence[Relation], hierarchy: ConceptIndex) -> list[Relation]:
    """``relations`` without those whose head is broader than another head of the same tail,
    or whose tail is broader than another tail of the same head. BC5CDR's guidelines annotate
    a relation at the most specific level the abstract names ("seizures", not also "nervous
    system diseases"), and the pair network, which never sees the hierarchy, cannot tell the
    levels apart."""
    heads: dict[str, set[str]] = {}
    tails: dict[str, set[str]] = {}
    for relation in relations:
        tails.setdefault(relation.head, set()).add(relation.tail)
        heads.setdefault(relation.tail, set()).add(relation.head)
    return [r for r in relations
            if not any(hierarchy.broader(r.tail, other) for other in tails[r.head])
            and not any(hierarchy.broader(r.head, other) for other in heads[r.tail])]


def check_folder(folder: Path) -> dict[str, Any]:
    """The folder's ``medner.json``, after checking it is a complete relation model folder."""
    return check_stage_folder(folder, BACKEND, "relation model", REQUIRED_FILES,
                              ("threshold", "training_config"))
