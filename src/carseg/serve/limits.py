"""The request's size limits, enforced before anything reads the request: its body (also while it streams in)
and its query string."""
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carseg.serve.errors import answer

MAX_QUERY = 2048  # bytes of query string; every option with a long value takes about 250


class RequestLimits:
    """413 for a body over ``max_bytes`` (at once from Content-Length, or as soon as a streamed body passes it) and
    414 for a query string over ``MAX_QUERY`` bytes."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes
        self.message = f"upload over the limit of {max_bytes / 2**20:g} MB (--max-upload-mb); send a smaller photo"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if len(scope["query_string"]) > MAX_QUERY:
            return await answer(scope["path"], 414, f"query string of {len(scope['query_string'])} bytes, over the limit of "
                                    f"{MAX_QUERY}; send only the options you need")(scope, receive, send)
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            return await answer(scope["path"], 413, self.message)(scope, receive, send)
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, self.message)
            return message

        await self.app(scope, limited, send)
