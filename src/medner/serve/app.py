"""The HTTP API and the web page: ``create_app(model)`` returns a FastAPI app.

Endpoints: ``POST /v1/extract``, ``GET /v1/model``, ``GET /healthz``, the page at ``/``
(static files under ``/static``) and FastAPI's OpenAPI docs (``/docs``, ``/openapi.json``).

Every error is JSON, ``{"error": {"code", "message", ...}}``: 413 for a request over a size
limit (naming it), 422 for a body that is not valid JSON or not the expected shape, 401
for a missing or wrong API key, 415 for a body not sent as ``application/json`` (which
also makes a browser preflight cross-site requests), 503 when the queue is full.
The API key is compared in constant time and never logged or echoed.
"""

from __future__ import annotations

import hmac
import json
import logging
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from medner.document import Document
from medner.serve.batching import MicroBatcher, Overloaded, ShuttingDown

log = logging.getLogger("medner.serve")

STATIC = Path(__file__).parent / "static"
DEFAULT_MAX_CHARS = 100_000
DEFAULT_MAX_TEXTS = 64
# JSON can spend up to 6 bytes on one character (\u00e9); the rest is room for the envelope.
_BYTES_PER_CHAR = 6
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


# --- request and response shapes (validation and the OpenAPI docs) --------------------------


class ExtractRequest(BaseModel):
    """Either ``texts`` (a list) or ``text`` (one string)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"texts": ["she has malaria and fever after chloroquine"]}]})
    texts: list[str] | None = Field(None, description="Texts to extract from.")
    text: str | None = Field(None, description="One text (instead of `texts`).")


class SpanOut(BaseModel):
    start: int = Field(description="0-based character offset of the first character.")
    end: int = Field(description="Offset after the last character (end-exclusive).")
    label: str
    text: str = Field(description="The text at [start, end).")
    score: float | None = Field(description="Model confidence in [0, 1].")
    ids: list[str] = Field(default_factory=list, description="Concept IDs (e.g. MeSH) from "
                           "the model folder's linker; empty when unlinked.")
    link_score: float | None = Field(default=None, description="How sure linking was of "
                                     "ids: 1 for an exact name, else a similarity.")
    attributes: dict[str, str] = Field(default_factory=dict, description="Span attributes; "
                                       "'assertion' is present, absent (negated) or possible "
                                       "(uncertain) when the model folder has an assertion "
                                       "stage.")


class RelationOut(BaseModel):
    label: str
    head: str
    tail: str
    args: str = Field(description="'concept' (head/tail are concept ids) or 'span'.")


class DocumentOut(BaseModel):
    id: str = Field(description="Position of the text in the request, from 1.")
    text: str
    spans: list[SpanOut]
    relations: list[RelationOut]
    concepts: dict[str, str] = Field(default_factory=dict, description="Preferred name of "
                                     "each concept ID in spans and relations.")


class ExtractResponse(BaseModel):
    documents: list[DocumentOut]


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None,
                 **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
        self.extra = extra

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, **self.extra}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def document_json(doc: Document) -> dict[str, Any]:
    spans = []
    for span in doc.spans:
        out = span.to_dict()
        out.setdefault("score", None)
        spans.append(out)
    return {"id": doc.id, "text": doc.text, "spans": spans,
            "relations": [r.to_dict() for r in doc.relations],
            "concepts": dict(doc.metadata.get("concepts", {}))}


def _base_model(base: Any) -> dict[str, Any]:
    if not isinstance(base, dict):
        return {"name": None if base is None else str(base), "source": None}
    name, source = base.get("name"), base.get("source")
    if source == "folder" and isinstance(name, str):
        name = Path(name).name  # a local folder: its name, not where it is on the server
    return {"name": name, "source": source}


def model_info(model) -> dict[str, Any]:
    """What ``GET /v1/model`` says: no file system paths, no training data paths."""
    meta = dict(getattr(model, "meta", {}) or {})
    base = meta.get("base_model") or {}
    metrics = meta.get("dev_metrics") or None
    schema = getattr(model, "schema", None)
    return {
        "name": meta.get("folder_name"),
        "backend": meta.get("backend", getattr(model, "backend", None)),
        "schema": getattr(schema, "name", None),
        "labels": list(getattr(model, "labels", ()) or ()),
        "scheme": meta.get("scheme"),
        "base_model": _base_model(base),
        "metrics": {k: metrics[k] for k in ("micro", "macro", "per_label") if k in metrics}
        if isinstance(metrics, dict) else None,
        "created": meta.get("created"),
        "medner_version": meta.get("medner_version"),
    }


# --- request parsing -----------------------------------------------------------------------


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) to read more than ``limit`` bytes."""
    declared = request.headers.get("content-length")
    too_big = ApiError(413, "body_too_large", f"the request body is larger than {limit} bytes "
                       "(max_texts x max_chars allows no more)", limit="max_body_bytes", max=limit)
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


def parse_texts(body: bytes, *, max_chars: int, max_texts: int) -> list[str]:
    """The texts of an extract request, or an ``ApiError`` saying what is wrong."""
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON: {exc.msg} at line "
                       f"{exc.lineno} column {exc.colno}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError(422, "invalid_json", f"the body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "invalid_request", 'expected a JSON object: {"texts": ["..."]} or '
                       '{"text": "..."}')
    try:
        request = ExtractRequest.model_validate(data)
    except ValidationError as exc:
        details = [{"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                   for e in exc.errors()[:20]]
        first = details[0] if details else {"field": "", "message": "invalid"}
        raise ApiError(422, "invalid_request", f"{first['field']}: {first['message']}",
                       details=details) from None
    if (request.texts is None) == (request.text is None):
        raise ApiError(422, "invalid_request", 'give exactly one of "texts" (a list of strings) '
                       'or "text" (a string)')
    texts = request.texts if request.texts is not None else [request.text]
    if not texts:
        raise ApiError(422, "invalid_request", '"texts" is empty; send at least one text')
    if len(texts) > max_texts:
        raise ApiError(413, "too_many_texts", f"{len(texts)} texts in one request; the limit is "
                       f"{max_texts} (max_texts). Split the request.", limit="max_texts",
                       max=max_texts, got=len(texts))
    for i, text in enumerate(texts):
        if len(text) > max_chars:
            raise ApiError(413, "text_too_long", f"text {i} has {len(text)} characters; the "
                           f"limit is {max_chars} (max_chars). Split the text.",
                           limit="max_chars", max=max_chars, got=len(text), index=i)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ApiError(422, "invalid_text", f"text {i} is not valid Unicode: lone surrogate "
                           f"at character {exc.start}", index=i) from None
    return texts


# --- the app -------------------------------------------------------------------------------


# One piece: FastAPI's routes, error handlers and middleware are closures registered on
# this app and share its model, batcher and key check.
def create_app(model, *, max_chars: int = DEFAULT_MAX_CHARS, max_texts: int = DEFAULT_MAX_TEXTS,
               api_key: str | None = None, max_batch_texts: int = 32,
               max_wait_ms: float = 200.0) -> FastAPI:
    """The API over a loaded model (``medner.load``).

    ``max_chars``/``max_texts`` bound one request; ``api_key`` (when given) is required on
    ``/v1/*`` as ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``;
    ``max_batch_texts``/``max_wait_ms`` shape the grouping of concurrent requests.
    """
    if max_chars < 1 or max_texts < 1:
        raise ValueError("max_chars and max_texts must be >= 1")
    if api_key is not None and not api_key.strip():
        raise ValueError("the API key is empty; unset it to serve without a key")
    key = api_key.encode("utf-8") if api_key is not None else None
    body_limit = max_texts * (max_chars * _BYTES_PER_CHAR + 16) + 4096
    batcher = MicroBatcher(lambda texts: model.extract(texts), max_batch_texts=max_batch_texts,
                           max_wait_ms=max_wait_ms)
    info = model_info(model)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        await batcher.close()

    app = FastAPI(
        title="medner",
        version=str(info.get("medner_version") or "0"),
        description="Medical entity extraction with a trained medner model. Offsets are "
                    "0-based, end-exclusive character offsets into the text sent.",
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.model = model

    def check_key(request: Request) -> None:
        if key is None:
            return
        supplied = request.headers.get("x-api-key")
        if supplied is None:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            supplied = token.strip() if scheme.lower() == "bearer" else None
        if supplied is None or not hmac.compare_digest(supplied.encode("utf-8", "replace"), key):
            client = request.client.host if request.client else "?"
            log.warning("%s %s from %s refused: %s API key", request.method, request.url.path,
                        client, "no" if supplied is None else "wrong")
            raise ApiError(401, "unauthorized", "missing or wrong API key: send it as "
                           "'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                           headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return ApiError(exc.status_code, code, str(exc.detail), headers=exc.headers).response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return ApiError(422, "invalid_request", str(exc.errors()[:5])).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("unexpected error on %s %s", request.method, request.url.path,
                  exc_info=(type(exc), exc, exc.__traceback__))
        return ApiError(500, "internal_error", f"the server failed on this request "
                        f"({type(exc).__name__}); see the server log").response()

    errors = {401: {"model": ErrorResponse, "description": "Missing or wrong API key"},
              413: {"model": ErrorResponse, "description": "Over max_texts, max_chars or the "
                    "body size limit; `error.limit` names it"},
              415: {"model": ErrorResponse, "description": "Body not sent as application/json"},
              422: {"model": ErrorResponse, "description": "Not JSON, or not the expected shape"},
              503: {"model": ErrorResponse, "description": "Too many queued requests; retry"}}

    @app.post("/v1/extract", response_model=ExtractResponse, responses=errors,
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": ExtractRequest.model_json_schema(ref_template=
                                                             "#/components/schemas/{model}")}}}},
              summary="Extract entities from texts")
    async def extract(request: Request) -> JSONResponse:
        """Spans per text (``start``, ``end``, ``label``, ``text``, ``score``) and relations.

        Limits: ``max_texts`` texts per request, ``max_chars`` characters per text (see
        ``GET /v1/model``).
        """
        check_key(request)
        content_type = request.headers.get("content-type", "")
        if content_type.split(";")[0].strip().lower() != "application/json":
            raise ApiError(415, "unsupported_media_type", "send the body as JSON with "
                           "'Content-Type: application/json'")
        body = await read_body(request, body_limit)
        texts = parse_texts(body, max_chars=max_chars, max_texts=max_texts)
        try:
            docs = await batcher.submit(texts)
        except Overloaded:
            raise ApiError(503, "overloaded", "too many requests are waiting; retry shortly",
                           headers={"Retry-After": "1"}) from None
        except ShuttingDown:
            raise ApiError(503, "shutting_down", "the server is shutting down",
                           headers={"Retry-After": "5"}) from None
        out = []
        for i, doc in enumerate(docs):
            item = document_json(doc)
            item["id"] = str(i + 1)
            out.append(item)
        return JSONResponse({"documents": out})

    @app.get("/v1/model", responses={401: errors[401]}, summary="What the model predicts")
    async def model_endpoint(request: Request) -> JSONResponse:
        """Backend, labels, base model and dev metrics from the model folder's ``medner.json``,
        and this server's request limits."""
        check_key(request)
        return JSONResponse({**info, "limits": {"max_chars": max_chars,
                                                "max_texts": max_texts}})

    @app.get("/healthz", summary="Liveness; also says whether an API key is required")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "auth_required": key is not None, "queued": batcher.queued,
                "batching": batcher.stats.to_dict()}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        page = STATIC / "index.html"
        if not page.is_file():  # a packaging error must not take the API down with it
            raise ApiError(500, "page_missing", f"the web page is missing from the installed "
                           f"package ({page}); the API still works. Reinstall medner.")
        return FileResponse(page, headers=_PAGE_HEADERS)

    @app.middleware("http")
    async def page_headers(request: Request, call_next):
        response = await call_next(request)
        if request.url.path.startswith("/static/"):
            response.headers.update(_PAGE_HEADERS)
        return response

    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")
    return app


__all__ = ["DEFAULT_MAX_CHARS", "DEFAULT_MAX_TEXTS", "create_app", "model_info", "parse_texts"]
