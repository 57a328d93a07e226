"""The ASGI app: ``POST /api/remove``, ``GET /health``, the web page at ``/`` and the OpenAPI page at ``/docs``."""
import io
import re
import zipfile
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Annotated, AsyncIterator, Callable, List, Optional, Tuple, TypeVar

import anyio
import numpy as np
from anyio.from_thread import check_cancelled
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response
from fastapi_offline import FastAPIOffline
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from carseg.data.colour import to_srgb
from carseg.data.exif import kept_exif
from carseg.data.images import Photo
from carseg.errors import CarsegError, one_line
from carseg.inference.options import OutputLimits, TooLarge
from carseg.inference.predictor import Predictor, Prepared
from carseg.inference.step import cut_out
from carseg.serve.batcher import Batcher
from carseg.serve.errors import RequestId, error, validation_error
from carseg.serve.limits import RequestLimits
from carseg.serve.options import RemoveOptions
from carseg.serve.photos import MEDIA_TYPES, ServeError, check_header, decode, encode

INDEX = Path(__file__).parent / "static" / "index.html"
UPLOAD = {"required": True, "content": {  # the body is read by hand (multipart or raw), so describe it for /docs
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary", "description": "the photo"},
        "background": {"type": "string", "format": "binary", "description": "optional: a picture to put behind the car"}}}},
    "image/*": {"schema": {"type": "string", "format": "binary"}}}}
T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Limits and batching of the service (``catalyst-dl serve`` options)."""

    max_upload_mb: float = 25.0
    max_megapixels: float = 40.0  # the photo, and each picture of the answer (OutputLimits)
    max_instances: int = 20  # cars in an instances=true answer
    timeout_s: float = 60.0
    max_batch: int = 8  # 1: batching off, one request per forward pass
    max_wait_ms: float = 10.0
    workers: int = 2  # threads that decode photos and encode cut-outs


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


def zip_pictures(pictures: List[bytes], name: str, suffix: str) -> bytes:
    """``NAME_1.<suffix>``, ``NAME_2.<suffix>``, ... in one ZIP (stored: the pictures are compressed already)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for number, picture in enumerate(pictures, 1):
            archive.writestr(f"{name}_{number}.{suffix}", picture)
    return buffer.getvalue()


def create_app(predictor: Predictor, settings: Settings = Settings()) -> FastAPI:
    """The service around one Predictor: requests' forward passes are batched, decoding and encoding run in
    ``settings.workers`` threads. Every answer's size is checked before the work it bounds, and a request past
    ``settings.timeout_s`` stops where it is: its threads stop at their next step, its queued forward pass is
    dropped."""
    codec = anyio.CapacityLimiter(settings.workers)
    max_pixels = int(settings.max_megapixels * 1e6)
    limits = OutputLimits(max_pixels, settings.max_instances, query=True)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with Batcher(predictor.forward, settings.max_batch, settings.max_wait_ms / 1000) as app.state.batcher:
            yield

    app = FastAPIOffline(title="carseg", summary="Cut cars out of photos: background removal with carseg's model.",
                         lifespan=lifespan)
    app.add_middleware(RequestLimits, max_bytes=int(settings.max_upload_mb * 2**20))
    app.add_middleware(RequestId)  # outermost: every answer carries the id, an unexpected error is answered here
    app.add_exception_handler(HTTPException, lambda request, exc: error(exc.status_code, exc.detail))
    app.add_exception_handler(ServeError, lambda request, exc: error(exc.status, str(exc)))
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(TooLarge, lambda request, exc: error(413, one_line(exc)))
    app.add_exception_handler(CarsegError, lambda request, exc: error(400, one_line(exc)))

    async def in_pool(function: Callable[..., T], *args) -> T:
        """``function(*args)`` in a codec thread; a cancelled request's stops at its next ``check_cancelled``."""
        return await anyio.to_thread.run_sync(function, *args, limiter=codec)

    def check(upload: Upload, options: RemoveOptions) -> None:
        """Refuse from the uploads' headers what would pass the limits; on the event loop (no decoding), so a
        refusal never waits for a thread."""
        width, height = check_header(upload.photo, max_pixels)
        if not options.mask:
            limits.check(options.cutout(), options.format, width, height)
        if upload.background is not None:
            try:
                check_header(upload.background, max_pixels)
            except ServeError as exc:
                raise ServeError(exc.status, f"background: {exc}") from None

    def prepare(upload: Upload) -> Tuple[Photo, Optional[np.ndarray], Prepared]:
        photo = decode(upload.photo)
        check_cancelled()
        background = None if upload.background is None else decode(upload.background)
        check_cancelled()
        picture = None if background is None else to_srgb(background.pixels, background.profile)  # as --background's
        return photo, picture, predictor.prepare(photo.pixels, photo.profile)

    def finish(photo: Photo, prob: np.ndarray, options: RemoveOptions, background: Optional[np.ndarray],
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
            return zip_pictures(pictures, name, options.format), f"{name}.zip", cut.confidence
        return pictures[0], f"{name}.{options.format}", cut.confidence

    @app.post("/api/remove", response_class=Response, openapi_extra={"requestBody": UPLOAD}, responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "the cut-out, the mask, "
              "or with instances=true a ZIP of one cut-out per car"},
        400: {"description": "empty, truncated or corrupt photo"},
        413: {"description": "upload, photo or answer too large (--max-upload-mb, --max-megapixels, --max-instances)"},
        414: {"description": "query string too long"}, 415: {"description": "not an image"},
        422: {"description": "unknown option or value"},
        504: {"description": "took longer than the request timeout"}})
    async def remove(request: Request, options: Annotated[RemoveOptions, Query()]) -> Response:
        """Cut the car out of a photo sent as the multipart field ``file`` or as the raw body."""
        try:
            with anyio.fail_after(settings.timeout_s):
                upload = await read_upload(request)
                check(upload, options)
                photo, background, prepared = await in_pool(prepare, upload)
                prob, batch_size = await request.app.state.batcher(prepared)
                body, filename, score = await in_pool(finish, photo, prob, options, background, upload.name)
        except TimeoutError:
            raise ServeError(504, f"no answer within {settings.timeout_s:g} s (--timeout): the service is busy; "
                                  "retry later or send a smaller photo") from None
        return Response(body, media_type=MEDIA_TYPES[Path(filename).suffix[1:]], headers={
            "X-Batch-Size": str(batch_size), "X-Confidence": f"{score:.4f}",
            "Content-Disposition": f'inline; filename="{filename}"'})

    @app.get("/health")
    async def health(request: Request) -> dict:
        """Liveness, the model, the batches run so far and the requests dropped (timed out) before theirs ran."""
        batcher = request.app.state.batcher
        return {"status": "ok", "model": predictor.metadata.model, "device": predictor.device,
                "settings": asdict(settings), "requests": batcher.items, "batches": batcher.batches,
                "dropped": batcher.dropped}

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(INDEX)

    return app
