"""Serving a trained model over HTTP: a FastAPI app (``create_app``) with a web page.

Needs the ``serve`` extra (fastapi, uvicorn). ``medner serve MODEL`` runs it with uvicorn;
in Python::

    import medner
    from medner.serve import create_app
    app = create_app(medner.load("models/demo"), max_chars=20_000)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from medner.serve.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # Lazy, so that importing medner.serve.batching does not need FastAPI.
    if name == "create_app":
        from medner.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'medner.serve' has no attribute {name!r}")
