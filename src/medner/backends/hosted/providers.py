"""One adapter per provider over its official SDK: chat for extraction, and tuning jobs.

Keys come only from the environment and stay inside the SDK clients; medner never writes or
prints them. Base URLs follow the SDKs' own variables, so a local stub can stand in:

=========  ===========================================  =======================================
provider   credentials                                  base URL override
=========  ===========================================  =======================================
openai     ``OPENAI_API_KEY``                           ``OPENAI_BASE_URL``
vertex     ``GOOGLE_CLOUD_PROJECT`` (+ ``GOOGLE_CLOUD_   ``GOOGLE_VERTEX_BASE_URL``
           LOCATION``, default us-central1) with
           application default credentials, or
           ``GOOGLE_API_KEY`` (Vertex AI express mode:
           extraction only)
cohere     ``CO_API_KEY``                               ``CO_API_URL``
=========  ===========================================  =======================================

The SDKs' own retries are switched off: ``calls.RetryPolicy`` is the one place
that decides how long to back off, so it can honour ``Retry-After`` and stay bounded.

Tuning routes that no longer exist: Google AI Studio (Gemini API) tuning ended in 2025 (Gemini
is tuned on Vertex AI), and Cohere deprecated fine-tuning in September 2025.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from medner.errors import ConfigError, MednerError

TUNABLE = ("openai", "vertex")
PROVIDERS = ("openai", "vertex", "cohere")
DEFAULT_VERTEX_LOCATION = "us-central1"

COHERE_TUNING_GONE = (
    "Cohere deprecated fine-tuning in September 2025: there is no tuning API to start a job "
    "on. Use the base model with prompting instead, e.g. `medner extract "
    "hosted:cohere:command-a-03-2025 ...` or compare it on your gold data with `medner "
    "evaluate hosted:cohere:command-a-03-2025 --data GOLD` (add few-shot examples with "
    "'?examples=TRAIN_FILE&shots=3'), or tune with --provider openai or vertex.")


@dataclass(frozen=True)
class JobStatus:
    state: str
    """The provider's own state name (``running``, ``JOB_STATE_SUCCEEDED``, ...)."""
    done: bool
    succeeded: bool
    tuned_model: str | None = None
    """The id to send extraction requests to (OpenAI ``ft:...``, a Vertex endpoint)."""
    message: str | None = None
    trained_tokens: int | None = None


def _need_env(*names: str, why: str) -> None:
    if not any(os.environ.get(n) for n in names):
        raise ConfigError(f"set {' or '.join(names)} in the environment ({why}); medner reads "
                          "keys only from there and never stores them")


def _need_sdk(module: str, package: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise MednerError(f"this needs the {package!r} package: pip install 'medner[hosted]'"
                          ) from None


@contextmanager
def _quiet_experimental() -> Iterator[None]:
    # google-genai warns on every tuning call that its tuning API is experimental; once per
    # poll would bury the progress display.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*tuning implementation is experimental")
        yield


class OpenAIProvider:
    name = "openai"

    def __init__(self) -> None:
        _need_env("OPENAI_API_KEY", why="OpenAI API key")
        openai = _need_sdk("openai", "openai")
        self.client = openai.OpenAI(max_retries=0)

    def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
        response = self.client.chat.completions.create(
            model=model, messages=messages, temperature=0, max_tokens=max_tokens)
        return response.choices[0].message.content or ""

    def upload(self, path: Path) -> str:
        with open(path, "rb") as handle:
            return self.client.files.create(file=handle, purpose="fine-tune").id

    def start(self, *, base_model: str, train: Path, dev: Path | None, suffix: str | None,
              gcs_uri: str | None, dev_gcs_uri: str | None, epochs: int | None,
              ) -> tuple[str, dict[str, str]]:
        """(job id, uploaded file ids)."""
        if gcs_uri or dev_gcs_uri:
            raise ConfigError("--gcs-uri / --dev-gcs-uri are for --provider vertex; OpenAI "
                              "tuning files are uploaded by medner")
        files = {"training_file": self.upload(train)}
        if dev is not None:
            files["validation_file"] = self.upload(dev)
        extra = {"suffix": suffix} if suffix else {}
        if epochs:
            extra["hyperparameters"] = {"n_epochs": epochs}
        job = self.client.fine_tuning.jobs.create(model=base_model, **files, **extra)
        return job.id, files

    def status(self, job_id: str) -> JobStatus:
        job = self.client.fine_tuning.jobs.retrieve(job_id)
        error = getattr(job, "error", None)
        return JobStatus(state=job.status, done=job.status in ("succeeded", "failed",
                                                               "cancelled"),
                         succeeded=job.status == "succeeded", tuned_model=job.fine_tuned_model,
                         message=getattr(error, "message", None),
                         trained_tokens=job.trained_tokens)


class VertexProvider:
    name = "vertex"

    def __init__(self) -> None:
        _need_env("GOOGLE_CLOUD_PROJECT", "GOOGLE_API_KEY",
                  why="Vertex AI: a project (with application default credentials) or an "
                      "express-mode API key")
        genai = _need_sdk("google.genai", "google-genai")
        self.types = _need_sdk("google.genai.types", "google-genai")
        project = os.environ.get("GOOGLE_CLOUD_PROJECT")
        if project:
            location = os.environ.get("GOOGLE_CLOUD_LOCATION", DEFAULT_VERTEX_LOCATION)
            self.client = genai.Client(vertexai=True, project=project, location=location)
        else:
            self.client = genai.Client(vertexai=True, api_key=os.environ["GOOGLE_API_KEY"])
        self.has_project = bool(project)

    def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
        types = self.types
        system = [m["content"] for m in messages if m["role"] == "system"]
        contents = [types.Content(role="model" if m["role"] == "assistant" else "user",
                                  parts=[types.Part(text=m["content"])])
                    for m in messages if m["role"] != "system"]
        config = types.GenerateContentConfig(temperature=0, max_output_tokens=max_tokens,
                                             system_instruction=system[0] if system else None)
        response = self.client.models.generate_content(model=model, contents=contents,
                                                       config=config)
        return response.text or ""

    def start(self, *, base_model: str, train: Path, dev: Path | None, suffix: str | None,
              gcs_uri: str | None, dev_gcs_uri: str | None, epochs: int | None,
              ) -> tuple[str, dict[str, str]]:
        types = self.types
        if not self.has_project:
            raise ConfigError("Vertex AI tuning needs GOOGLE_CLOUD_PROJECT (and "
                              "GOOGLE_CLOUD_LOCATION) with application default credentials; "
                              "an express-mode API key can only run extraction")
        if not gcs_uri or not gcs_uri.startswith("gs://"):
            raise ConfigError(f"Vertex AI reads tuning data from Cloud Storage: copy {train} "
                              "to a bucket (gcloud storage cp FILE gs://BUCKET/train.jsonl) and "
                              "pass --gcs-uri gs://BUCKET/train.jsonl")
        if dev is not None and not dev_gcs_uri:
            raise ConfigError(f"--dev given: copy {dev} to Cloud Storage too and pass "
                              "--dev-gcs-uri gs://BUCKET/dev.jsonl")
        config = types.CreateTuningJobConfig(
            tuned_model_display_name=suffix,
            epoch_count=epochs,
            validation_dataset=(types.TuningValidationDataset(gcs_uri=dev_gcs_uri)
                                if dev_gcs_uri else None))
        with _quiet_experimental():
            job = self.client.tunings.tune(
                base_model=base_model, training_dataset=types.TuningDataset(gcs_uri=gcs_uri),
                config=config)
        files = {"training_dataset": gcs_uri}
        if dev_gcs_uri:
            files["validation_dataset"] = dev_gcs_uri
        return job.name, files

    def status(self, job_id: str) -> JobStatus:
        with _quiet_experimental():
            job = self.client.tunings.get(name=job_id)
        state = job.state.value if job.state is not None else "JOB_STATE_UNSPECIFIED"
        tuned = job.tuned_model
        return JobStatus(state=state,
                         done=state in ("JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED",
                                        "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"),
                         succeeded=state == "JOB_STATE_SUCCEEDED",
                         # Tuned Gemini models are served from an endpoint of their own.
                         tuned_model=(tuned.endpoint or tuned.model) if tuned else None,
                         message=job.error.message if job.error else None)


class CohereProvider:
    name = "cohere"

    def __init__(self) -> None:
        _need_env("CO_API_KEY", why="Cohere API key")
        cohere = _need_sdk("cohere", "cohere")
        self.client = cohere.ClientV2(api_key=os.environ["CO_API_KEY"])

    def chat(self, model: str, messages: list[dict[str, str]], max_tokens: int) -> str:
        response = self.client.chat(model=model, messages=messages, temperature=0,
                                    max_tokens=max_tokens, request_options={"max_retries": 0})
        return "".join(getattr(part, "text", "") or "" for part in response.message.content or [])


def get_provider(name: str):
    """A connected adapter (its key is checked here, its SDK imported here)."""
    classes = {"openai": OpenAIProvider, "vertex": VertexProvider, "cohere": CohereProvider}
    if name == "gemini":
        raise ConfigError("Gemini tuning through Google AI Studio (the Gemini API) ended in "
                          "2025; Gemini models are tuned on Vertex AI: use --provider vertex")
    try:
        return classes[name]()
    except KeyError:
        raise ConfigError(f"unknown provider {name!r}; choose one of: "
                          f"{', '.join(PROVIDERS)}") from None


__all__ = ["COHERE_TUNING_GONE", "PROVIDERS", "TUNABLE", "CohereProvider", "JobStatus",
           "OpenAIProvider", "VertexProvider", "get_provider"]
