"""Tuning files for each provider, built with the shared prompt templates, and checked.

One *example* is one (document, template task) pair: the task's user message and its target
completion (``medner.backends.prompted.prompts.Task``), so a hosted model is tuned on exactly
the prompts the local LLM backend trains on and the extraction path later sends.

Formats (one JSON object per line):

``openai``   chat fine-tuning: ``{"messages": [{"role": "system"?}, {"role": "user"},
             {"role": "assistant"}]}``
``vertex``   Gemini supervised tuning on Vertex AI: ``{"systemInstruction"?: {"parts": [...]},
             "contents": [{"role": "user", "parts": [{"text"}]}, {"role": "model", ...}]}``
``cohere``   Cohere chat fine-tuning: ``{"messages": [{"role": "System"?}, {"role": "User"},
             {"role": "Chatbot"}]}`` (the service is gone since September 2025; the file is
             still written for other tools that read it)
``legacy``   the tutorials' ``{"prompt": ..., "completion": ...}`` pairs

Limits are the providers' documented ones; token counts are *approximate* (characters / 4,
OpenAI's rule of thumb for English), so a record near a limit is flagged as a warning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medner.backends.prompted.prompts import Task, document_tasks, get_template
from medner.document import Document
from medner.errors import FormatError, one_of
from medner.labels import LabelSchema

CHARS_PER_TOKEN = 4


def approx_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Limits:
    """A provider's documented limits for one tuning file."""

    min_examples: int
    max_tokens_per_example: int
    max_file_bytes: int
    roles: tuple[str, ...]
    """Roles allowed in a conversation, in the provider's spelling."""
    source: str
    """Where the numbers come from (shown with problems)."""
    recommended_examples: int = 0
    max_validation_examples: int | None = None


LIMITS: dict[str, Limits] = {
    # platform.openai.com/docs/guides/fine-tuning: at least 10 examples; gpt-4o-mini trains on
    # up to 65,536 tokens per example; files up to 512 MB.
    "openai": Limits(10, 65_536, 512 * 1024**2, ("system", "user", "assistant"),
                     "OpenAI fine-tuning guide", recommended_examples=50),
    # cloud.google.com/vertex-ai/generative-ai/docs/models/gemini-supervised-tuning (Gemini 2.5):
    # 131,072 input+output tokens per example, JSONL up to 1 GB, validation up to 5,000
    # examples; Google recommends starting with 100 examples.
    "vertex": Limits(1, 131_072, 1024**3, ("user", "model"), "Vertex AI Gemini tuning docs",
                     recommended_examples=100, max_validation_examples=5_000),
    # docs.cohere.com/docs/chat-preparing-the-data: at least 2 conversations, 16,384 tokens each.
    "cohere": Limits(2, 16_384, 1024**3, ("System", "User", "Chatbot"),
                     "Cohere chat fine-tuning docs"),
    # The legacy completion models (babbage-002, davinci-002): 10 examples, 16,384 tokens.
    "legacy": Limits(10, 16_384, 512 * 1024**2, (), "OpenAI legacy fine-tuning guide"),
}
PROVIDERS = tuple(LIMITS)


def check_provider(provider: str) -> Limits:
    return one_of(LIMITS, provider, "provider format")


# ---------------------------------------------------------------------------- building


@dataclass(frozen=True)
class Example:
    document_id: str
    task: str
    prompt: str
    completion: str


def build_examples(documents: Iterable[Document], schema: LabelSchema,
                   template: str) -> list[Example]:
    """One example per document and template task (only the tasks a document has targets for)."""
    tasks: list[Task] = get_template(template).build_tasks(schema)
    return [Example(doc.id, task.name, task.user_message(doc.text, schema), task.completion(doc))
            for doc in documents for task in document_tasks(doc, tasks)]


def to_record(example: Example, provider: str, system: str | None = None) -> dict[str, Any]:
    """The provider's JSON object for one example."""
    check_provider(provider)
    if provider == "legacy":
        prompt = f"{system}\n\n{example.prompt}" if system else example.prompt
        return {"prompt": prompt, "completion": example.completion}
    if provider == "vertex":
        record: dict[str, Any] = {}
        if system:
            record["systemInstruction"] = {"parts": [{"text": system}]}
        record["contents"] = [{"role": "user", "parts": [{"text": example.prompt}]},
                              {"role": "model", "parts": [{"text": example.completion}]}]
        return record
    system_role, user_role, answer_role = LIMITS[provider].roles
    messages = [{"role": system_role, "content": system}] if system else []
    messages += [{"role": user_role, "content": example.prompt},
                 {"role": answer_role, "content": example.completion}]
    return {"messages": messages}


def to_jsonl(records: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def read_records(path: str | Path) -> list[dict[str, Any]]:
    """Records of an existing tuning file (to validate it); a line that is not JSON is an error."""
    records = []
    with open(path, encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FormatError(path, lineno, f"not a JSON object: {exc.msg}") from None
            records.append(record)
    return records


# ---------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Problem:
    record: int | None
    """1-based record (line) number; ``None`` for the whole file."""
    field: str
    message: str
    severity: str = "error"
    """``error`` (the provider would reject the file) or ``warning``."""


@dataclass
class Validation:
    provider: str
    examples: int = 0
    approx_tokens: int = 0
    max_example_tokens: int = 0
    file_bytes: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "examples": self.examples,
                "approx_tokens": self.approx_tokens, "max_example_tokens": self.max_example_tokens,
                "file_bytes": self.file_bytes,
                "problems": [vars(p) for p in self.problems]}


def validate(records: Sequence[Any], provider: str, *, validation_set: bool = False) -> Validation:
    """Check records against the provider's limits; every problem names record and field."""
    limits = check_provider(provider)
    result = Validation(provider, examples=len(records),
                        file_bytes=len(to_jsonl(records).encode("utf-8")))
    for number, record in enumerate(records, start=1):
        texts, problems = _record_texts(record, provider, limits)
        for where, message in problems:
            result.problems.append(Problem(number, where, message))
        tokens = sum(approx_tokens(t) for t in texts)
        result.approx_tokens += tokens
        result.max_example_tokens = max(result.max_example_tokens, tokens)
        if tokens > limits.max_tokens_per_example:
            result.problems.append(Problem(
                number, "*", f"~{tokens:,} tokens, over the limit of "
                f"{limits.max_tokens_per_example:,} per example ({limits.source})"))
        elif tokens > 0.9 * limits.max_tokens_per_example:
            result.problems.append(Problem(
                number, "*", f"~{tokens:,} tokens, close to the limit of "
                f"{limits.max_tokens_per_example:,} (the count is approximate)", "warning"))
    minimum = 1 if validation_set else limits.min_examples
    if len(records) < minimum:
        result.problems.append(Problem(None, "file", f"{len(records)} examples; at least "
                                       f"{minimum} needed ({limits.source})"))
    elif not validation_set and len(records) < limits.recommended_examples:
        result.problems.append(Problem(None, "file", f"{len(records)} examples; the provider "
                                       f"recommends starting with {limits.recommended_examples}",
                                       "warning"))
    if (validation_set and limits.max_validation_examples is not None
            and len(records) > limits.max_validation_examples):
        result.problems.append(Problem(None, "file", f"{len(records)} validation examples; at "
                                       f"most {limits.max_validation_examples:,} allowed"))
    if result.file_bytes > limits.max_file_bytes:
        result.problems.append(Problem(None, "file", f"{result.file_bytes:,} bytes; files up to "
                                       f"{limits.max_file_bytes:,} bytes are accepted"))
    return result


def _record_texts(record: Any, provider: str,
                  limits: Limits) -> tuple[list[str], list[tuple[str, str]]]:
    """(the texts that count toward tokens, [(field, problem)]) of one record."""
    if not isinstance(record, dict):
        return [], [("record", "not a JSON object")]
    if provider == "legacy":
        texts, problems = [], []
        for key in ("prompt", "completion"):
            value = record.get(key)
            if not isinstance(value, str) or not value.strip():
                problems.append((key, "missing or empty (a non-empty string is required)"))
            else:
                texts.append(value)
        return texts, problems
    if provider == "vertex":
        return _vertex_texts(record)
    return _message_texts(record, limits.roles)


def _message_texts(record: dict[str, Any],
                   roles: tuple[str, ...]) -> tuple[list[str], list[tuple[str, str]]]:
    system_role, user_role, answer_role = roles
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        return [], [("messages", "missing or not a non-empty list")]
    texts, problems = [], []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            problems.append((where, "not an object"))
            continue
        role, content = message.get("role"), message.get("content")
        if role not in roles:
            problems.append((f"{where}.role", f"{role!r} is not one of {', '.join(roles)}"))
        if role == system_role and i != 0:
            problems.append((f"{where}.role", f"{system_role} may only be the first message"))
        if not isinstance(content, str) or not content.strip():
            problems.append((f"{where}.content", "missing or empty"))
        else:
            texts.append(content)
    turns = [m.get("role") for m in messages if isinstance(m, dict)]
    if user_role not in turns:
        problems.append(("messages", f"no {user_role} message"))
    if not turns or turns[-1] != answer_role:
        problems.append(("messages", f"the last message must be the {answer_role}'s answer, "
                         "which is what the model learns"))
    return texts, problems


def _vertex_texts(record: dict[str, Any]) -> tuple[list[str], list[tuple[str, str]]]:
    texts, problems = [], []
    system = record.get("systemInstruction")
    if system is not None:
        parts = system.get("parts") if isinstance(system, dict) else None
        if not isinstance(parts, list) or not parts:
            problems.append(("systemInstruction.parts", "missing or empty"))
        else:
            texts += [p["text"] for p in parts if isinstance(p, dict)
                      and isinstance(p.get("text"), str)]
    contents = record.get("contents")
    if not isinstance(contents, list) or not contents:
        return texts, problems + [("contents", "missing or not a non-empty list")]
    for i, content in enumerate(contents):
        where = f"contents[{i}]"
        if not isinstance(content, dict):
            problems.append((where, "not an object"))
            continue
        if content.get("role") not in ("user", "model"):
            problems.append((f"{where}.role", f"{content.get('role')!r} is not user or model"))
        parts = content.get("parts")
        if not isinstance(parts, list) or not parts:
            problems.append((f"{where}.parts", "missing or empty"))
            continue
        for j, part in enumerate(parts):
            text = part.get("text") if isinstance(part, dict) else None
            if not isinstance(text, str) or not text.strip():
                problems.append((f"{where}.parts[{j}].text", "missing or empty"))
            else:
                texts.append(text)
    roles = [c.get("role") for c in contents if isinstance(c, dict)]
    if roles and roles[-1] != "model":
        problems.append(("contents", "the last turn must be the model's answer"))
    if any(a == b for a, b in zip(roles, roles[1:], strict=False)):
        problems.append(("contents", "user and model turns must alternate"))
    return texts, problems


__all__ = ["LIMITS", "PROVIDERS", "Example", "Limits", "Problem", "Validation", "approx_tokens",
           "build_examples", "check_provider", "read_records", "to_jsonl", "to_record",
           "validate"]
