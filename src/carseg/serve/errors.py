"""Error answers: one JSON line naming the problem and what to do, never echoing much of the input; a request id
on every answer; an unexpected exception logged with its traceback and answered with only that id."""
import logging
import uuid
from typing import Any, Dict

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carseg.serve.options import allowed_values

LOG = logging.getLogger("uvicorn.error")  # uvicorn's own log: its level and format (--log-level)
QUOTE = 40  # characters of a client's input an error quotes at most


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """``{"error": "one line naming the problem and what to do"}`` with the status code."""
    return JSONResponse({"error": message, **extra}, status_code=status)


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
            await error(500, f"internal error, logged as request {request_id}; the service goes on, please report "
                             "it with that id", request_id=request_id)(scope, receive, send_with_id)
