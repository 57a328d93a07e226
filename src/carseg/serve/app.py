"""The ASGI app: ``POST /api/remove``, the remove.bg API (``POST /v1.0/removebg``, ``GET /v1.0/account``),
``GET /health``, the web page at ``/`` and the OpenAPI page at ``/docs``."""
import re
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, AsyncIterator, Optional, Tuple, Union

import numpy as np
from anyio.from_thread import check_cancelled
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from carseg.data.exif import kept_exif
from carseg.data.images import Photo
from carseg.errors import CarsegError, one_line
from carseg.inference.device_refinement import Refined
from carseg.inference.options import TooLarge
from carseg.inference.predictor import Predictor
from carseg.inference.step import cut_out
from carseg.serve.batcher import Batcher
from carseg.serve.errors import RequestId, answer, validation_error
from carseg.serve.keys import ApiKeys, KeyStore, RateLimiter
from carseg.serve.limits import RequestLimits
from carseg.serve.options import RemoveOptions
from carseg.serve.photos import MEDIA_TYPES, ServeError, encode, zip_files
from carseg.serve.pipeline import Pipeline, Settings
from carseg.serve.removebg import removebg_routes
from carseg.serve.url_fetch import UrlFetcher

INDEX = Path(__file__).parent / "static" / "index.html"
UPLOAD = {"required": True, "content": {  # the body is read by hand (multipart or raw), so describe it for /docs
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "the photo"},
        "background": {"type": "string", "format": "binary", "description": "optional: a picture to put behind the car"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}
__all__ = ["Settings", "create_app"]


@dataclass
class Upload:
    photo: bytes
    background: Optional[bytes]  # a picture behind the car (multipart field ``background``)
    name: str  # the photo's file name without suffix, for the answer's


async def read_upload(request: Request) -> Upload:
    """The photo (multipart field ``file``, or the raw body) and an optional background picture."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return Upload(await request.body(), None, "photo")
    form = await request.form(max_files=2, max_fields=4)
    photo, background = form.get("file"), form.get("background")
    if not isinstance(photo, UploadFile):
        raise ServeError(400, "multipart upload without a file in the field 'file'; send the photo as file=@photo.jpg")
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(photo.filename or "photo").stem)[:100]  # safe in a header
    return Upload(await photo.read(), await background.read() if isinstance(background, UploadFile) else None, name)


def create_app(predictor: Predictor, settings: Settings = Settings(), keys: Optional[KeyStore] = None) -> FastAPI:
    """The service around one Predictor: requests' forward passes are batched, decoding and encoding run in
    ``settings.workers`` threads. Every answer's size is checked before the work it bounds, and a request past
    ``settings.timeout_s`` stops where it is: its threads stop at their next step, its queued forward pass is
    dropped. ``keys``: the API keys the cut-out routes need (None: none needed)."""
    pipeline = Pipeline(predictor, settings)
    limits = pipeline.limits
    max_bytes = int(settings.max_upload_mb * 2**20)
    limiter = RateLimiter(settings.rate_limit) if settings.rate_limit else None
    fetcher = (UrlFetcher(settings.url_fetch, max_bytes, min(settings.url_fetch_timeout_s, settings.timeout_s))
               if settings.url_fetch else None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Batcher(pipeline.forward, settings.max_batch, settings.max_wait_ms / 1000) as app.state.batcher:
            yield

    app = FastAPIOffline(title="carseg", summary="Cut cars out of photos: background removal with carseg's model.",
                         lifespan=lifespan)
    app.add_middleware(RequestLimits, max_bytes=max_bytes)
    app.add_middleware(ApiKeys, keys=keys, limiter=limiter)  # before the limits: a bad key costs nothing
    app.add_middleware(RequestId)  # outermost: every answer carries the id, an unexpected error is answered here
    path = lambda request: request.url.path
    app.add_exception_handler(HTTPException, lambda request, exc: answer(path(request), exc.status_code, exc.detail))
    app.add_exception_handler(ServeError, lambda request, exc: answer(path(request), exc.status, str(exc), exc.code))
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(TooLarge, lambda request, exc: answer(path(request), 413, one_line(exc)))
    app.add_exception_handler(CarsegError, lambda request, exc: answer(path(request), 400, one_line(exc)))
    app.include_router(removebg_routes(pipeline, max_bytes, fetcher, limiter))

    def finish(photo: Photo, prob: Union[np.ndarray, Refined], options: RemoveOptions, background: Optional[np.ndarray],
               name: str) -> Tuple[bytes, str, float]:
        """The answer's body, file name and confidence: one picture, or a ZIP of one per car with ``instances``.
        The pictures carry the photo's colour profile, and its EXIF as ``keep_metadata`` and ``keep_location`` say."""
        cutout = options.cutout(background)
        cut = cut_out(predictor, photo.pixels, prob, cutout, options.threshold, pictures=not options.mask,
                      limits=limits, checkpoint=check_cancelled, profile=photo.profile)
        if options.mask:
            return encode(cut.hard, "png"), f"{name}_mask.png", cut.confidence
        exif = kept_exif(photo.exif, cutout.keep_metadata, cutout.keep_location)
        pictures = []
        while cut.pictures:  # each picture is freed once encoded
            check_cancelled()
            pictures.append(encode(cut.pictures.pop(0), options.format, photo.profile, exif))
        if options.instances:
            numbered = {f"{name}_{number}.{options.format}": picture for number, picture in enumerate(pictures, 1)}
            return zip_files(numbered), f"{name}.zip", cut.confidence
        return pictures[0], f"{name}.{options.format}", cut.confidence

    @app.post("/api/remove", response_class=Response, openapi_extra={"requestBody": UPLOAD}, responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "the cut-out, the mask, "
              "or with instances=true a ZIP of one cut-out per car"},
        400: {"description": "empty, truncated or corrupt photo"},
        413: {"description": "upload, photo or answer too large (--max-upload-mb, --max-megapixels, --max-instances)"},
        414: {"description": "query string too long"}, 415: {"description": "not an image"},
        422: {"description": "unknown option or value"}, 403: {"description": "missing or wrong X-Api-Key (--api-keys)"},
        429: {"description": "over --rate-limit (Retry-After)"},
        504: {"description": "took longer than the request timeout"}})
    async def remove(request: Request, options: Annotated[RemoveOptions, Query()]) -> Response:
        """Cut the car out of a photo sent as the multipart field ``file`` or as the raw body."""
        with pipeline.deadline():
            upload = await read_upload(request)
            pipeline.check(upload.photo, upload.background, None if options.mask else options.cutout(), options.format)
            photo, background, prepared = await pipeline.in_pool(pipeline.prepare, upload.photo, upload.background)
            prob, batch_size = await request.app.state.batcher(prepared)
            body, filename, score = await pipeline.in_pool(finish, photo, prob, options, background, upload.name)
        return Response(body, media_type=MEDIA_TYPES[Path(filename).suffix[1:]], headers={
            "X-Batch-Size": str(batch_size), "X-Confidence": f"{score:.4f}",
            "Content-Disposition": f'inline; filename="{filename}"'})

    @app.get("/health")
    async def health(request: Request) -> dict:
        """Liveness, the model, whether the cut-out routes need an API key (``auth``), the batches run so far and the
        requests dropped (timed out) before theirs ran."""
        batcher = request.app.state.batcher
        return {"status": "ok", "model": predictor.metadata.model, "device": predictor.device,
                "settings": {**asdict(settings), "url_fetch": bool(settings.url_fetch)},  # the hosts stay private
                "auth": keys is not None, "requests": batcher.items, "batches": batcher.batches,
                "dropped": batcher.dropped}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(INDEX)

    return app
