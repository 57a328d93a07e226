"""Error answers: one JSON line naming the problem and what to do, never echoing much of the input; a request id
on every answer; an unexpected exception logged with its traceback and answered with only that id. carseg's own
routes answer ``{"error": ...}``; the remove.bg API's (``/v1.0/``) answer in remove.bg's shape and statuses."""
import logging
import uuid
from typing import Any, Dict, Mapping, Optional

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carseg.serve.options import allowed_values

LOG = logging.getLogger("uvicorn.error")  # uvicorn's own log: its level and format (--log-level)
QUOTE = 40  # characters of a client's input an error quotes at most


REMOVEBG = "/v1.0/"  # the remove.bg API's routes
CODES = {400: "invalid_input", 403: "auth_failed", 413: "file_too_large", 414: "query_too_long",
         415: "unsupported_image", 422: "invalid_parameter", 429: "rate_limit_exceeded", 500: "internal_error",
         504: "timeout"}  # remove.bg-style error codes of carseg's statuses


def error(status: int, message: str, headers: Optional[Mapping[str, str]] = None, **extra: Any) -> JSONResponse:
    """``{"error": "one line naming the problem and what to do"}`` with the status code."""
    return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)


def removebg_error(status: int, message: str, code: Optional[str] = None,
                   headers: Optional[Mapping[str, str]] = None) -> JSONResponse:
    """remove.bg's error answer, ``{"errors": [{"title": "one line ...", "code": "..."}]}``, and its statuses: bad
    input of any kind (too large, not an image, a bad parameter) is 400."""
    return JSONResponse({"errors": [{"title": message, "code": code or CODES.get(status, "error")}]},
                        status_code=400 if status in (413, 414, 415, 422) else status, headers=headers)


def answer(path: str, status: int, message: str, code: Optional[str] = None,
           headers: Optional[Mapping[str, str]] = None) -> JSONResponse:
    """The error answer in the shape of the route at ``path``: remove.bg's under ``/v1.0/``, carseg's elsewhere."""
    if path.startswith(REMOVEBG):
        return removebg_error(status, message, code, headers)
    return error(status, message, headers)


def quote(value: Any) -> str:
    """A client's input as an error quotes it: its first ``QUOTE`` characters."""
    text = str(value)
    return text if len(text) <= QUOTE else f"{text[:QUOTE]}... ({len(text)} characters)"


def _describe(problem: Dict[str, Any]) -> str:
    """One pydantic error as ``name=value: what is wrong``."""
    name = quote(".".join(str(part) for part in problem["loc"][1:]))
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        return f"{name}: unknown option"
    return f"{name}={quote(problem['input'])}: {message}" if name else message  # no name: a check across options


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad option and the values it allows (the OpenAPI page at /docs lists them all)."""
    problems = [_describe(problem) for problem in exc.errors()]
    named = {str(problem["loc"][-1]) for problem in exc.errors()}
    allowed = {name: values for name, values in allowed_values().items() if name in named}
    return error(422, "; ".join(problems) + "; see /docs for every option", **({"allowed": allowed} if allowed else {}))


class RequestId:
    """Every answer carries ``X-Request-Id``. An exception no handler took is logged with its traceback under that
    id and answered 500 with the id alone (no internals), and the connection stays open for the next request."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request_id = uuid.uuid4().hex[:16]
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                MutableHeaders(scope=message).append("X-Request-Id", request_id)
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            LOG.exception("request %s (%s %r) failed", request_id, scope["method"], scope["path"])
            if started:  # too late for an answer: the server closes the connection
                raise
            message = f"internal error, logged as request {request_id}; the service goes on, please report it with that id"
            response = (removebg_error(500, message) if scope["path"].startswith(REMOVEBG) else
                        error(500, message, request_id=request_id))
            await response(scope, receive, send_with_id)
