"""Probe: how good is a CID relation head that reads the NER model's own encoder states?

The chain's relation model runs a second MiniLM pass (with entity markers) after NER, which
costs more than NER itself. If the relation head could read the states the NER pass already
computed, relations would cost almost nothing. This probe measures what that sharing would
cost in accuracy: the NER folder's encoder is frozen; copies of its top ``--layers`` layers
(0: none) are fine-tuned, reading the frozen states below them plus a learned embedding on
mention tokens (head / tail) in the place of inserted markers; the pair head and pooling are
the relation model's (``medner.relations.network``: mention mean, concept logsumexp, context
between the closest mentions, the six pair features). Epoch and threshold are chosen on the
same held-out tenth of TRAIN as ``train_relations``; DEV (gold entities and IDs) is scored
once, on the concept-id basis.

    python benchmarks/relations_on_ner_states.py --ner /tmp/medner-bench/bc5cdr-after \\
        --train .../CDR_TrainingSet.PubTator.txt --dev .../CDR_DevelopmentSet.PubTator.txt \\
        --layers 2 --epochs 6 --json /tmp/relations-on-ner-states.json

A probe, not a product path: one document per step, no checkpointing, no model folder.
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import random
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from machine import describe, emit  # benchmarks/machine.py, beside this script

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WINDOW, OVERLAP = 510, 128  # the relation model's windows, [CLS] and [SEP] left out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ner", required=True, help="NER model folder (its encoder is read)")
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--layers", type=int, default=2, help="top layers fine-tuned")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    import torch
    from torch import nn
    from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

    from medner.document import Relation
    from medner.io import read_corpus
    from medner.relations.candidates import FEATURES, document_candidates, gold_pairs
    from medner.relations.encoding import owners, token_range, window_starts
    from medner.relations.network import pair_context
    from medner.relations.train import best_threshold
    from medner.scoring import evaluate
    from medner.split import hold_out

    torch.manual_seed(args.seed)
    order = random.Random(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.ner)
    encoder = AutoModel.from_pretrained(args.ner).eval()
    depth = encoder.config.num_hidden_layers
    started = time.perf_counter()

    def frozen_states(document) -> dict:
        """The NER encoder's states below the fine-tuned layers, one row per sub-token."""
        candidates = document_candidates(document, "Chemical", "Disease")
        tokens = tokenizer(document.text, add_special_tokens=False,
                           return_offsets_mapping=True, verbose=False)
        ids, offsets = tokens["input_ids"], tokens["offset_mapping"]
        starts = window_starts(len(ids), WINDOW, OVERLAP)
        owner = owners(len(ids), starts, WINDOW)
        rows = [[tokenizer.cls_token_id, *ids[s:s + WINDOW], tokenizer.sep_token_id]
                for s in starts]
        width = max(map(len, rows))
        input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
        mask = torch.zeros_like(input_ids)
        for r, row in enumerate(rows):
            input_ids[r, :len(row)], mask[r, :len(row)] = torch.tensor(row), 1
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            hidden = encoder(input_ids=input_ids, attention_mask=mask,
                             output_hidden_states=True).hidden_states[depth - args.layers]
        flat = hidden.float().reshape(-1, hidden.shape[-1])
        states = flat[[owner[p] * width + p - starts[owner[p]] + 1 for p in range(len(ids))]]
        mentions = candidates.mentions()
        ranges = [token_range([a for a, _ in offsets], [b for _, b in offsets], m)
                  for m in mentions] if offsets else []
        gold = gold_pairs(document, "CID")
        return {"document": document, "candidates": candidates, "states": states.clone(),
                "ranges": torch.tensor(ranges, dtype=torch.long).reshape(-1, 2),
                "position": {m: k for k, m in enumerate(mentions)},
                "labels": torch.tensor([float(p in gold) for p in candidates.pairs])}

    train = read_corpus(args.train).documents
    dev = read_corpus(args.dev).documents
    fit, held = hold_out(train, 0.1, args.seed)
    parts = {name: [frozen_states(d) for d in docs]
             for name, docs in (("fit", fit), ("held", held), ("dev", dev))}
    states_seconds = time.perf_counter() - started
    hidden_size = encoder.config.hidden_size

    class SharedStateHead(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = nn.ModuleList(copy.deepcopy(encoder.encoder.layer[depth - args.layers:]))
            self.role = nn.Embedding(3, hidden_size)  # 0 other token, 1 head, 2 tail mention
            nn.init.zeros_(self.role.weight)  # starts as the NER states themselves
            self.head = nn.Sequential(nn.Linear(4 * hidden_size + len(FEATURES), hidden_size),
                                      nn.GELU(), nn.Dropout(0.1), nn.Linear(hidden_size, 1))

        def forward(self, item: dict) -> torch.Tensor:
            candidates, x, ranges = item["candidates"], item["states"], item["ranges"]
            if not candidates.pairs:
                return x.new_zeros(0)
            if args.layers:
                role = torch.zeros(len(x), dtype=torch.long)
                heads = {m for group in candidates.heads.values() for m in group}
                for mention, (a, b) in zip(candidates.mentions(), ranges.tolist(), strict=True):
                    role[a:b] = 1 if mention in heads else 2
                h = (x + self.role(role)).unsqueeze(0)
                for layer in self.layers:
                    out = layer(h)
                    h = out[0] if isinstance(out, tuple) else out
                x = h[0]
            prefix = nn.functional.pad(x.float().cumsum(0), (0, 0, 1, 0))
            starts, ends = ranges[:, 0], ranges[:, 1]
            mentions = (prefix[ends] - prefix[starts]) / (ends - starts).unsqueeze(1)
            at = item["position"]

            def concept(group):
                return torch.logsumexp(mentions[[at[m] for m in group]], 0)

            h = torch.stack([concept(candidates.heads[a]) for a, _ in candidates.pairs])
            t = torch.stack([concept(candidates.tails[b]) for _, b in candidates.pairs])
            contexts = torch.tensor([(at[m], at[n], k) for k, closest in
                                     enumerate(candidates.contexts) for m, n in closest])
            context = pair_context(prefix, starts, ends, contexts, len(candidates.pairs))
            features = torch.tensor(candidates.features, dtype=torch.float32)
            return self.head(torch.cat([h, t, h * t, context, features], -1)).squeeze(-1)

    network = SharedStateHead()
    optimizer = torch.optim.AdamW(
        [{"params": list(network.layers.parameters()), "lr": 1e-4},
         {"params": [*network.role.parameters(), *network.head.parameters()], "lr": 1e-3}],
        weight_decay=0.01)
    examples = [e for e in parts["fit"] if e["candidates"].pairs]
    steps = args.epochs * math.ceil(len(examples) / 4)
    schedule = get_linear_schedule_with_warmup(optimizer, round(0.06 * steps), steps)

    def score(items) -> list[dict]:
        network.eval()
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
            return [dict(zip(i["candidates"].pairs, torch.sigmoid(network(i).float()).tolist(),
                             strict=True)) for i in items]

    history, best = [], (-1.0, 0.5, None)
    for epoch in range(1, args.epochs + 1):
        network.train()
        order.shuffle(examples)
        total, begun = 0.0, time.perf_counter()
        for first in range(0, len(examples), 4):
            chunk = examples[first:first + 4]
            with torch.autocast("cpu", torch.bfloat16):
                logits = torch.cat([network(e) for e in chunk]).float()
            loss = nn.functional.binary_cross_entropy_with_logits(
                logits, torch.cat([e["labels"] for e in chunk]))
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total += loss.item() * len(chunk)
        scored, n_gold = [], 0
        for item, scores in zip(parts["held"], score(parts["held"]), strict=True):
            gold = gold_pairs(item["document"], "CID")
            n_gold += len(gold)
            scored += [(p, pair in gold) for pair, p in scores.items()]
        threshold, held_scores = best_threshold(scored, n_gold)
        history.append({"epoch": epoch, "loss": round(total / len(examples), 5),
                        "threshold": threshold, "held_out": held_scores,
                        "seconds": round(time.perf_counter() - begun, 1)})
        print(history[-1], file=sys.stderr, flush=True)
        if held_scores["f1"] > best[0]:
            best = (held_scores["f1"], threshold, copy.deepcopy(network.state_dict()))
    network.load_state_dict(best[2])
    begun = time.perf_counter()
    predicted = [replace(item["document"], relations=tuple(
        Relation("CID", h, t, "concept") for (h, t), p in sorted(scores.items()) if p >= best[1]))
        for item, scores in zip(parts["dev"], score(parts["dev"]), strict=True)]
    head_seconds = time.perf_counter() - begun
    report = evaluate(dev, predicted, modes=("strict",), bootstrap=1000, seed=0).relations
    emit({"date": datetime.now(UTC).strftime("%Y-%m-%d"), "machine": describe(),
          "command": " ".join(["python", *sys.argv]), "layers_fine_tuned": args.layers,
          "states_seconds_train_and_dev": round(states_seconds, 1), "epochs": history,
          "threshold": best[1], "dev_gold_entities": {"basis": report.basis,
                                                      **report.micro.to_dict()},
          "dev_head_seconds": round(head_seconds, 2)}, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
