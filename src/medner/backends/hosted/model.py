"""A model behind a provider's API, used like a local LLM folder: prompts -> answers -> spans.

Loaded from a run folder written by ``medner hosted tune`` (the tuned model) or from a
reference ``hosted:PROVIDER:MODEL`` (any base or tuned model id), optionally followed by
``?labels=S&template=T&examples=FILE&shots=K&system=TEXT`` (defaults: bc5cdr, entities-json,
no examples). ``examples`` turns the prompt into few-shot prompting: the first ``shots``
documents of FILE are shown as earlier user/assistant turns.

Prompts, answer parsing and grounding are shared with the local LLM backend
(``medner.backends.prompted``), so strings not in the text are dropped and counted the same
way and ``medner evaluate`` scores both identically; this module only asks the provider. Each
document is sent whole: hosted models take far longer prompts than the local one, so it is not
cut into pieces.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from medner.backends.hosted.calls import ResponseCache, RetryPolicy
from medner.backends.hosted.providers import PROVIDERS, get_provider
from medner.backends.prompted.answers import plan_prompts, read_answers
from medner.backends.prompted.prompts import Task, get_template
from medner.core.folder import SchemaFromMeta
from medner.document import Document, documents_from_texts
from medner.errors import ConfigError, MednerError
from medner.labels import get_schema

REFERENCE_PREFIX = "hosted:"
DEFAULT_LABELS = "bc5cdr"
DEFAULT_TEMPLATE = "entities-json"
DEFAULT_MAX_TOKENS = 1024
REFERENCE_OPTIONS = ("labels", "template", "examples", "shots", "system")


def parse_reference(reference: str) -> dict[str, Any]:
    """The meta of a ``hosted:PROVIDER:MODEL[?options]`` reference (as a run folder has)."""
    body, _, query = reference[len(REFERENCE_PREFIX):].partition("?")
    provider, _, model = body.partition(":")
    if provider not in PROVIDERS or not model:
        raise ConfigError(f"{reference!r}: a hosted model reference reads hosted:PROVIDER:MODEL "
                          f"with PROVIDER one of {', '.join(PROVIDERS)}, e.g. "
                          "hosted:openai:gpt-4o-mini")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = sorted(set(options) - set(REFERENCE_OPTIONS))
    if unknown:
        raise ConfigError(f"{reference!r}: unknown option(s) {unknown}; use "
                          f"{', '.join(REFERENCE_OPTIONS)}")
    meta: dict[str, Any] = {
        "backend": "hosted", "provider": provider, "model": model,
        "template": options.get("template", DEFAULT_TEMPLATE),
        "schema": get_schema(options.get("labels", DEFAULT_LABELS)).to_dict(),
        "system": options.get("system") or None,
    }
    if "examples" in options:
        try:
            shots = int(options.get("shots", "3"))
        except ValueError:
            raise ConfigError(f"{reference!r}: shots must be a whole number") from None
        meta["few_shot"] = {"path": options["examples"], "shots": shots}
    return meta


class HostedModel(SchemaFromMeta):
    """``extract``/``predict`` through a provider's chat API; ``last_notes`` holds the counts
    of the latest call (hallucinations, bad lines, API calls, cached answers)."""

    backend = "hosted"

    def __init__(self, meta: dict[str, Any], *, cache: ResponseCache | None = None,
                 retry: RetryPolicy | None = None, path: str | None = None) -> None:
        self.meta = meta
        self.path = path
        self.provider_name = str(meta["provider"])
        self.model_id = str(meta["model"])
        self.system = meta.get("system")
        self.max_tokens = int(meta.get("inference", {}).get("max_tokens", DEFAULT_MAX_TOKENS))
        self.tasks: list[Task] = get_template(meta["template"]).build_tasks(self.schema)
        self.cache = cache or ResponseCache()
        self.retry = retry or RetryPolicy()
        self.shots = self._few_shot_documents(meta.get("few_shot"))
        self._provider = None  # connected on the first answer not in the cache
        self.last_notes: dict[str, int] = {}

    def _few_shot_documents(self, few_shot: dict[str, Any] | None) -> list[Document]:
        if not few_shot:
            return []
        from medner.io import read_corpus
        from medner.labels import apply_schema

        documents = read_corpus(few_shot["path"], on_mismatch="skip").documents
        mapped, _ = apply_schema(documents[: int(few_shot["shots"])], self.schema)
        return mapped

    # ------------------------------------------------------------------ prompts and answers
    def messages(self, task: Task, text: str) -> list[dict[str, str]]:
        turns = [{"role": "system", "content": self.system}] if self.system else []
        for example in self.shots:
            turns += [{"role": "user", "content": task.user_message(example.text, self.schema)},
                      {"role": "assistant", "content": task.completion(example)}]
        return turns + [{"role": "user", "content": task.user_message(text, self.schema)}]

    def answer(self, messages: list[dict[str, str]]) -> tuple[str, bool]:
        """(answer, came from the cache)."""
        key = self.cache.key(self.provider_name, self.model_id, messages,
                             {"temperature": 0, "max_tokens": self.max_tokens})
        cached = self.cache.get(key)
        if cached is not None:
            return cached, True
        if self._provider is None:
            self._provider = get_provider(self.provider_name)
        provider = self._provider
        text = self.retry.call(lambda: provider.chat(self.model_id, messages, self.max_tokens),
                               f"{self.provider_name} model {self.model_id}")
        self.cache.put(key, text)
        return text, False

    # ------------------------------------------------------------------ prediction
    def predict(self, documents: Iterable[Document], *, progress: bool = False) -> list[Document]:
        """Copies of the documents (same id, text) with predicted spans and relations."""
        plan = plan_prompts(documents, self.tasks)
        answers, calls, cached = [], 0, 0
        with _progress_bar(progress, len(plan.prompts)) as advance:
            for prompt in plan.prompts:
                text, hit = self.answer(self.messages(prompt.task, prompt.text))
                answers.append(text)
                cached += hit
                calls += not hit
                advance()
        predicted, counts = read_answers(plan, answers, self.schema, key="hosted")
        self.last_notes = {
            **counts.notes(),
            "hosted_api_calls": calls,
            "hosted_cached_answers": cached,
            "hosted_rate_limit_retries": self.retry.retries,
        }
        return predicted

    def extract(self, texts: str | Iterable[str], *, ids: Sequence[str] | None = None,
                progress: bool = False) -> list[Document]:
        """New Documents holding the predicted spans (and relations), one per text."""
        return self.predict(documents_from_texts(texts, ids), progress=progress)


@contextmanager
def _progress_bar(enabled: bool, total: int) -> Iterator[Callable[[], None]]:
    """A rich progress bar over prompts; yields the function that advances it."""
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("hosted extraction", total=total)
        yield lambda: bar.advance(task)


def load(path: str | Path, *, bf16: bool | None = None, batch_size: int | None = None,
         threads: int | None = None) -> HostedModel:
    """A run folder of ``medner hosted tune``, or a ``hosted:PROVIDER:MODEL`` reference.

    ``bf16``, ``batch_size`` and ``threads`` are the loader's common options; they tune local
    compute, which a hosted model does not use.
    """
    from medner.core.folder import read_medner_json

    if str(path).startswith(REFERENCE_PREFIX):
        return HostedModel(parse_reference(str(path)), path=str(path))
    folder = Path(path)
    meta = read_medner_json(folder)
    if meta.get("backend") != "hosted":
        raise MednerError(f"{folder / 'medner.json'}: backend is {meta.get('backend')!r}, "
                          "not 'hosted'")
    job = meta.get("job", {})
    if job.get("status") != "succeeded" or not meta.get("model"):
        raise MednerError(f"{folder}: the tuning job {job.get('id')} is {job.get('state')!r}, "
                          "so there is no tuned model yet; rerun the same `medner hosted tune` "
                          "command to resume polling it")
    return HostedModel(meta, path=str(folder))


__all__ = ["REFERENCE_PREFIX", "HostedModel", "load", "parse_reference"]
