"""Fine-tune the encoder and the pair head on documents with gold concept relations.

A seeded part of the training documents is held out: after each epoch the model scores its
candidate pairs, the threshold with the best F1 there is found, and the epoch with the best
held-out F1 is kept with its threshold. Dev and test data are never seen.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from medner.basemodels import load_encoder_base
from medner.core.data import Log
from medner.core.device import training_device, training_precision
from medner.core.training import work_folder
from medner.document import Document, corpus_fingerprint
from medner.errors import ConfigError, MednerError
from medner.relations.candidates import (
    FEATURES,
    NO_ID,
    DocumentCandidates,
    document_candidates,
    gold_pairs,
)
from medner.relations.checkpoint import (
    Progress,
    TrainingState,
    load_checkpoint,
    remove_checkpoint,
    save_checkpoint,
)
from medner.relations.config import RelationConfig
from medner.relations.encoding import EncodedDocument
from medner.relations.model import RelationModel
from medner.split import hold_out


@dataclass(frozen=True)
class Example:
    candidates: DocumentCandidates
    encoded: EncodedDocument
    labels: tuple[float, ...]
    """1.0 for each candidate pair that is a gold relation, else 0.0."""


def train_relations(train_docs: Iterable[Document], *, out: str | Path | None = None,
                    config: RelationConfig | None = None, base_model: str | None = None,
                    epochs: int | None = None, seed: int | None = None, resume: bool = False,
                    log: Log = print) -> RelationModel:
    """Train a relation model on ``train_docs`` (spans with concept IDs, gold concept
    relations) and save it to ``out`` when given. ``base_model``, ``epochs`` and ``seed``,
    when given, replace those fields of ``config``. With ``out``, a checkpoint is kept beside
    it after every epoch; ``resume`` continues from it."""
    import torch
    from transformers import set_seed

    config = config or RelationConfig()
    chosen = {"base_model": base_model, "epochs": epochs, "seed": seed}
    config = replace(config, **{k: v for k, v in chosen.items() if v is not None})
    documents = list(train_docs)
    check_training_documents(documents, config)
    if config.threads:
        torch.set_num_threads(config.threads)
    started = time.perf_counter()
    set_seed(config.seed)
    base, tokenizer, encoder = load_base(config)
    from medner.relations.network import RelationNetwork

    model = RelationModel(RelationNetwork(encoder, len(FEATURES), config.dropout), tokenizer,
                          config, threshold=0.5)
    fit, held = split_held_out(documents, config.held_out, config.seed)
    every = [example(model, d) for d in fit]
    examples = [e for e in every if e.labels]
    uncovered = sum(len(gold_pairs(e.candidates.document, config.relation_label)
                        - set(e.candidates.pairs)) for e in every)
    log(f"relations: {len(fit)} training documents ({len(examples)} with candidate pairs, "
        f"{sum(len(e.labels) for e in examples)} pairs, "
        f"{sum(sum(e.labels) for e in examples):.0f} gold; {uncovered} gold relations name a "
        f"concept without a mention and cannot be learned), {len(held)} held out")
    work_dir = work_folder(out) if out is not None else None
    if work_dir is not None and not resume:
        remove_checkpoint(work_dir)
    identity = {"config": {k: v for k, v in config.to_dict().items() if k != "threads"},
                "train": corpus_fingerprint(fit), "held_out": corpus_fingerprint(held)}
    setup_seconds = time.perf_counter() - started
    progress = fit_network(model, examples, held, log, work_dir, identity)
    history = progress.history
    best = max(history, key=lambda h: h["held_out"]["f1"]) if held else history[-1]
    model.threshold = best["threshold"]
    model.record = {
        "base_model": base.to_dict(),
        "data": {"train_documents": len(fit), "train_fingerprint": identity["train"],
                 "held_out_documents": len(held), "held_out_fingerprint": identity["held_out"],
                 "uncovered_gold": uncovered},
        "epochs": history, "best_epoch": best["epoch"], "held_out": best["held_out"],
        "final_loss": history[-1]["loss"],
        "train_seconds": round(setup_seconds + progress.seconds, 1),
    }
    if out is not None:
        path = model.save(out)
        remove_checkpoint(work_dir)
        log(f"saved {path}")
    return model


def check_training_documents(documents: Sequence[Document], config: RelationConfig) -> None:
    """Errors that name what the training documents lack."""
    if not documents:
        raise MednerError("train_relations: no training documents")
    for label in (config.head_label, config.tail_label):
        if not any(s.label == label and set(s.ids) - NO_ID for d in documents for s in d.spans):
            raise MednerError(
                f"train_relations: no training document has a {label!r} span with a concept "
                "ID (Span.ids); the relation model pairs concepts, so training needs gold IDs "
                "(BC5CDR PubTator files carry them)")
    for doc in documents:
        for relation in doc.relations:
            if relation.label == config.relation_label and relation.args != "concept":
                raise MednerError(
                    f"train_relations: document {doc.id!r}: relation {relation.label!r} has "
                    f"args {relation.args!r}; the relation model learns concept relations "
                    "(Relation.args 'concept', head and tail concept IDs)")
    if not any(gold_pairs(d, config.relation_label) for d in documents):
        raise MednerError(f"train_relations: no {config.relation_label!r} relation in the "
                          "training documents (Document.relations); there is nothing to learn")
    if not any(gold_pairs(d, config.relation_label)
               & set(document_candidates(d, config.head_label, config.tail_label).pairs)
               for d in documents):
        raise MednerError(
            f"train_relations: no {config.relation_label!r} relation pairs a "
            f"{config.head_label!r} and a {config.tail_label!r} concept mentioned in its "
            "document (by Span.ids); there is nothing to learn")
    if config.held_out and len(documents) < 2:
        raise ConfigError("train_relations: held_out needs at least 2 documents; set "
                          "held_out=0 to train on a single document")


def split_held_out(documents: Sequence[Document], fraction: float, seed: int
                   ) -> tuple[list[Document], list[Document]]:
    """(training part, held-out part); no held-out part for ``fraction`` 0."""
    return hold_out(documents, fraction, seed) if fraction else (list(documents), [])


def load_base(config: RelationConfig):
    """(resolved base model, fast tokenizer, transformers encoder)."""
    from transformers import AutoModel

    base, tokenizer, encoder = load_encoder_base(config.base_model, "the relation model",
                                                 AutoModel.from_pretrained)
    limit = int(getattr(encoder.config, "max_position_embeddings", 512) or 512)
    if config.max_length > limit:
        raise ConfigError(f"relations config: max_length {config.max_length} exceeds the base "
                          f"model's {limit} positions")
    return base, tokenizer, encoder


def example(model: RelationModel, document: Document) -> Example:
    candidates = model.candidates(document)
    gold = gold_pairs(document, model.config.relation_label)
    labels = tuple(float(pair in gold) for pair in candidates.pairs)
    return Example(candidates, model.encode(candidates), labels)


def best_threshold(scored: Sequence[tuple[float, bool]], n_gold: int
                   ) -> tuple[float, dict[str, float]]:
    """The decision threshold with the best F1 over ``scored`` (probability, is gold) pairs,
    and its scores. ``n_gold`` counts every gold relation, those no candidate covers too.
    Without gold relations, or with F1 0 everywhere, the threshold is 0.5."""
    ranked = sorted(scored, key=lambda s: -s[0])
    best = (0.0, 0.5, 0.0, 0.0)
    hits = 0
    for k, (probability, is_gold) in enumerate(ranked, start=1):
        hits += is_gold
        if k < len(ranked) and ranked[k][0] == probability:
            continue  # a threshold cannot separate equal probabilities
        precision, recall = hits / k, hits / n_gold if n_gold else 0.0
        f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
        if f1 > best[0]:
            below = ranked[k][0] if k < len(ranked) else 0.0
            best = (f1, (probability + below) / 2, precision, recall)
    f1, threshold, precision, recall = best
    return threshold, {"precision": precision, "recall": recall, "f1": f1}


def held_out_scores(model: RelationModel, held: Sequence[Document]
                    ) -> tuple[float, dict[str, float]]:
    label = model.config.relation_label
    scored: list[tuple[float, bool]] = []
    n_gold = 0
    for doc, scores in zip(held, model.score_pairs(held), strict=True):
        gold = gold_pairs(doc, label)
        n_gold += len(gold)
        scored += [(p, pair in gold) for pair, p in scores.items()]
    return best_threshold(scored, n_gold)


# One piece: the epoch loop, its held-out selection and its checkpoint read as one story
def fit_network(model: RelationModel, examples: Sequence[Example], held: Sequence[Document],
                log: Log, work_dir: Path | None = None, identity: dict[str, Any] | None = None
                ) -> Progress:
    """Train ``model.network`` in place, leaving the best epoch's weights (by held-out F1;
    the last epoch's without a held-out part). With ``work_dir`` a checkpoint is written
    after every epoch, and one found there (for the same ``identity``) is resumed.

    A plain loop rather than transformers' Trainer: an example is a document with any number
    of windows, mentions and pairs, which the Trainer's tensor collation does not carry, and
    the fresh head needs its own learning rate beside the encoder's.
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    from medner.relations.network import make_batch

    config = model.config
    # a GPU when there is one, as the Trainer-based stages do; bf16 autocast where the device
    # has it natively (fp32 master weights; fp16 would need loss scaling, so fp32 instead)
    device = training_device()
    network = model.network.to(device)
    model.bf16 = training_precision(None, device) == "bf16"
    autocast = torch.autocast(torch.device(device).type, torch.bfloat16, enabled=model.bf16)
    optimizer = torch.optim.AdamW(parameter_groups(network, config))
    steps = config.epochs * -(-len(examples) // config.batch_size)
    state = TrainingState(network, optimizer, get_linear_schedule_with_warmup(
        optimizer, round(config.warmup * steps), steps), random.Random(config.seed))
    progress = None
    if work_dir is not None:
        progress = load_checkpoint(work_dir, identity or {}, state)
        if progress is not None:
            log(f"resuming after epoch {progress.epoch} from {work_dir}")
    progress = progress or Progress()
    earlier, begun = progress.seconds, time.perf_counter()
    for epoch in range(progress.epoch + 1, config.epochs + 1):
        started = time.perf_counter()
        network.train()
        total = 0.0
        for chunk in length_grouped_batches(examples, config.batch_size, state.order):
            batch = make_batch([e.encoded for e in chunk], [e.candidates.features for e in chunk],
                               model.tokenizer, config.max_length - 2, len(FEATURES))
            with autocast:
                logits = torch.cat(network(batch)).float()
            labels = torch.tensor([y for e in chunk for y in e.labels], device=logits.device)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), config.max_grad_norm)
            optimizer.step()
            state.schedule.step()
            total += loss.item() * len(chunk)
        row: dict[str, Any] = {"epoch": epoch, "loss": round(total / len(examples), 5)}
        threshold, scores = held_out_scores(model, held) if held else (0.5, None)
        row.update(threshold=threshold, held_out=scores,
                   seconds=round(time.perf_counter() - started, 1))
        log(f"epoch {epoch}: loss {row['loss']:.4f}" + (
            f", held-out P/R/F1 {100 * scores['precision']:.1f}/{100 * scores['recall']:.1f}/"
            f"{100 * scores['f1']:.1f} at threshold {threshold:.3f}" if scores else "")
            + f" ({row['seconds']:.0f} s)")
        progress.epoch, progress.seconds = epoch, earlier + time.perf_counter() - begun
        progress.history.append(row)
        if scores and scores["f1"] > progress.best_f1:
            progress.best_f1 = scores["f1"]
            progress.best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
        if work_dir is not None:
            save_checkpoint(work_dir, identity or {}, state, progress)
    if progress.best_state is not None:
        network.load_state_dict(progress.best_state)
    network.eval()
    return progress


def length_grouped_batches(examples: Sequence[Example], batch_size: int, order: random.Random
                           ) -> list[list[Example]]:
    """Shuffled batches of documents of similar length, so that little of each batch is
    padding (the idea of transformers' LengthGroupedSampler): shuffle, sort groups of 16
    batches by length, cut them into batches, shuffle the batches."""
    shuffled = list(examples)
    order.shuffle(shuffled)
    group = 16 * batch_size
    batches = []
    for first in range(0, len(shuffled), group):
        chunk = sorted(shuffled[first:first + group], key=lambda e: len(e.encoded.input_ids))
        batches += [chunk[k:k + batch_size] for k in range(0, len(chunk), batch_size)]
    order.shuffle(batches)
    return batches


def parameter_groups(network, config: RelationConfig) -> list[dict[str, Any]]:
    """AdamW groups: encoder and head at their own rates; no weight decay on biases and
    LayerNorm weights (the BERT fine-tuning convention)."""
    groups = []
    for part, rate in ((network.encoder, config.learning_rate),
                       (network.head, config.head_learning_rate)):
        named = [(n, p) for n, p in part.named_parameters() if p.requires_grad]
        plain = [p for n, p in named if p.ndim < 2]
        decayed = [p for n, p in named if p.ndim >= 2]
        groups += [{"params": decayed, "lr": rate, "weight_decay": config.weight_decay},
                   {"params": plain, "lr": rate, "weight_decay": 0.0}]
    return groups
