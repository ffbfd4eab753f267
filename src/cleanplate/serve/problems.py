"""RFC 9457 problem details: every error the server returns is one JSON object of this shape.

``type`` is a stable URI per kind of mistake (clients switch on it), ``title`` its short human
name, ``status`` the HTTP status, ``detail`` the one-line explanation for this request. The
handlers here turn every exception a request can raise into such a body: the server's own
:class:`Problem`, FastAPI's validation errors, Starlette's HTTP errors (404, 405), the library's
user errors (bad image, plate of another aspect), and, as a last resort, anything else (500,
without internals in the body).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .adapter import CleanplateError

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:cleanplate:problem:"  # a name, not a page: the README lists them all
log = logging.getLogger("cleanplate.serve")

# slug → (status, title): the complete list of problems this server can return.
PROBLEMS: dict[str, tuple[int, str]] = {
    "bad-request": (400, "Bad request"),
    "unauthorized": (401, "Missing or wrong token"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "not-ready": (409, "Job has no result yet"),
    "gone": (410, "Job result expired"),
    "too-large": (413, "Upload too large"),
    "too-many-pixels": (413, "Image too large"),
    "too-long": (413, "Video too long"),
    "unsupported-media-type": (415, "Unsupported media type"),
    "invalid-input": (422, "Invalid input"),
    "invalid-option": (422, "Invalid option"),
    "busy": (429, "Server busy"),
    "internal": (500, "Internal server error"),
    "unavailable": (503, "Shutting down"),
}


class Problem(Exception):
    """Raise anywhere while handling a request: becomes a problem+json response."""

    def __init__(self, kind: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        if kind not in PROBLEMS:
            raise ValueError(f"unknown problem kind {kind!r}")
        super().__init__(detail)
        self.kind = kind
        self.status, self.title = PROBLEMS[kind]
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"type": TYPE_BASE + self.kind, "title": self.title, "status": self.status, "detail": self.detail}


def problem_response(problem: Problem) -> JSONResponse:
    return JSONResponse(
        {**problem.body(), **problem.extra}, status_code=problem.status, headers=problem.headers, media_type=MEDIA_TYPE
    )


def describe_validation(errors: list[dict[str, Any]]) -> str:
    """Pydantic/FastAPI error list → one line naming the first bad field and why."""
    if not errors:
        return "invalid request"
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "body", "path", "header"))
    message = str(first.get("msg", "invalid value"))
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where or 'request'}: {message}{more}"


# schema fragment for the OpenAPI document: what every error response looks like
PROBLEM_SCHEMA = {
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
    },
}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses (problem+json bodies)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        titles = sorted({title for s, title in PROBLEMS.values() if s == status})
        out[status] = {"description": " / ".join(titles), "content": {MEDIA_TYPE: {"schema": PROBLEM_SCHEMA}}}
    return out


def install(app: FastAPI) -> None:
    """Register the handlers, so no error leaves the server in another shape."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return problem_response(Problem("invalid-option", describe_validation(list(exc.errors()))))

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError) -> JSONResponse:
        return problem_response(Problem("invalid-option", describe_validation(list(exc.errors()))))

    @app.exception_handler(CleanplateError)
    async def _library(request: Request, exc: CleanplateError) -> JSONResponse:
        return problem_response(Problem("invalid-input", str(exc).splitlines()[0] if str(exc) else type(exc).__name__))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        kinds = {404: "not-found", 405: "method-not-allowed", 400: "bad-request", 413: "too-large"}
        kind = kinds.get(exc.status_code)
        if kind is None:  # a status we never raise ourselves: keep it, still as a problem body
            body = {
                "type": "about:blank",
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
            }
            return JSONResponse(body, status_code=exc.status_code, media_type=MEDIA_TYPE, headers=exc.headers)
        detail = f"no such resource: {request.url.path}" if kind == "not-found" else str(exc.detail)
        if kind == "method-not-allowed":
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(Problem(kind, detail, headers=dict(exc.headers or {})))

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(Problem("internal", "the server failed on this request; see its log"))
