"""Error answers (one JSON line) and the upload-size limit, enforced while the body streams in."""
from typing import Any, Dict

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carseg.serve.options import allowed_values


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """``{"error": "one line naming the problem and what to do"}`` with the status code."""
    return JSONResponse({"error": message, **extra}, status_code=status)


def _describe(problem: Dict[str, Any]) -> str:
    """One pydantic error as ``name=value: what is wrong``."""
    name = ".".join(str(part) for part in problem["loc"][1:])
    message = problem["msg"].removeprefix("Value error, ")
    if problem["type"] == "extra_forbidden":
        return f"{name}: unknown option"
    return f"{name}={problem['input']}: {message}" if name else message  # no name: a check across options


async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """422 naming each bad option and the values it allows (the OpenAPI page at /docs lists them all)."""
    problems = [_describe(problem) for problem in exc.errors()]
    named = {str(problem["loc"][-1]) for problem in exc.errors()}
    allowed = {name: values for name, values in allowed_values().items() if name in named}
    return error(422, "; ".join(problems) + "; see /docs for every option", **({"allowed": allowed} if allowed else {}))


class BodyLimit:
    """413 for a body over ``max_bytes``: at once from Content-Length, or as soon as a streamed body passes it."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes
        self.message = f"upload over the limit of {max_bytes / 2**20:g} MB (--max-upload-mb); send a smaller photo"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            return await error(413, self.message)(scope, receive, send)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, limited, send)
