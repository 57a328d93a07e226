"""remove.bg's API on carseg's cut-outs, so that tools written for remove.bg work unchanged: ``POST /v1.0/removebg``
(the image as ``image_file``, ``image_file_b64`` or ``image_url``; parameters mapped onto carseg's cut-out options by
``carseg.serve.removebg_options``) and ``GET /v1.0/account``. Errors come in remove.bg's shape
(``carseg.serve.errors.removebg_error``); keys and rate limits are ``carseg.serve.keys``'."""
import base64
import binascii
import json
from dataclasses import dataclass, replace
from typing import Dict, Optional, Tuple, Union

import cv2
import numpy as np
from anyio.from_thread import check_cancelled
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from carseg.data.images import Photo
from carseg.inference.cutout import on_background
from carseg.inference.device_refinement import Refined
from carseg.inference.options import CutoutOptions
from carseg.inference.step import background_in, cut_out
from carseg.serve.keys import RateLimiter
from carseg.serve.photos import MEDIA_TYPES, ServeError, encode, zip_files
from carseg.serve.pipeline import Pipeline
from carseg.serve.removebg_options import FIELDS, FILES, SIZES, RemoveBgOptions, removebg_options
from carseg.serve.url_fetch import UrlFetcher

UNLIMITED = 1_000_000  # GET /v1.0/account's credits and free calls without --rate-limit: carseg counts no credits
FORM = {"required": True, "content": {media: {"schema": {"type": "object", "properties": {
    "image_file": {"type": "string", "format": "binary", "description": "the photo (or image_file_b64, image_url)"},
    "image_file_b64": {"type": "string"}, "image_url": {"type": "string", "description": "--allow-url-fetch hosts only"},
    "size": {"type": "string", "enum": list(SIZES)}, "type": {"type": "string", "enum": ["auto", "car"]},
    "format": {"type": "string", "enum": ["auto", "png", "jpg", "webp", "zip"]},
    "channels": {"type": "string", "enum": ["rgba", "alpha"]}, "bg_color": {"type": "string"},
    "bg_image_file": {"type": "string", "format": "binary"}, "bg_image_url": {"type": "string"},
    "crop": {"type": "boolean"}, "crop_margin": {"type": "string"}, "scale": {"type": "string"},
    "position": {"type": "string"}, "add_shadow": {"type": "boolean"}, "roi": {"type": "string"},
    "semitransparency": {"type": "boolean", "description": "false only"}}}}
    for media in ("multipart/form-data", "application/x-www-form-urlencoded", "application/json")}}


@dataclass
class Answer:
    body: bytes
    format: str
    size: Tuple[int, int]                  # width, height of the picture
    foreground: Tuple[int, int, int, int]  # left, top, width, height of what is not transparent in it
    confidence: float


async def read_fields(request: Request, max_bytes: int) -> Tuple[Dict[str, str], Dict[str, bytes]]:
    """The request's text parameters and uploads: multipart, url-encoded or JSON, as remove.bg takes them."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    fields: Dict[str, str] = {}
    files: Dict[str, bytes] = {}
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        form = await request.form(max_files=len(FILES), max_fields=len(FIELDS), max_part_size=max_bytes)
        items = form.multi_items()
    elif kind == "application/json":
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        if not isinstance(body, dict) or not all(isinstance(v, (str, bool, int, float)) for v in body.values()):
            raise ServeError(400, "the JSON body is not an object of parameters, e.g. {\"image_url\": \"...\", "
                                  "\"size\": \"auto\"}", "invalid_input")
        items = [(name, str(value).lower() if isinstance(value, bool) else str(value)) for name, value in body.items()]
    else:
        raise ServeError(400, "send the parameters as multipart/form-data (image_file=@photo.jpg), "
                              "application/x-www-form-urlencoded or application/json", "invalid_input")
    for name, value in items:
        if name in fields or name in files:
            raise ServeError(400, f"{name[:40]} given twice; give it once", "invalid_parameter")
        if isinstance(value, UploadFile):
            if name not in FILES:
                raise ServeError(400, f"{name[:40]}: only image_file and bg_image_file are uploads", "invalid_parameter")
            files[name] = await value.read()
        elif name in FILES:
            raise ServeError(400, f"{name}: send it as a file upload (or the photo as image_file_b64)",
                             "invalid_parameter")
        else:
            fields[name] = value
    return fields, files


def decode_b64(text: str) -> bytes:
    """``image_file_b64``: base64, with or without a ``data:image/...;base64,`` prefix."""
    try:
        return base64.b64decode("".join(text.split(",", 1)[-1].split()), validate=True)
    except (binascii.Error, ValueError):
        raise ServeError(400, "image_file_b64 is not base64; send the file's bytes base64-encoded, or upload it as "
                              "image_file", "invalid_input") from None


def foreground_box(alpha: np.ndarray) -> Tuple[int, int, int, int]:
    points = cv2.findNonZero(alpha)
    return (0, 0, 0, 0) if points is None else tuple(cv2.boundingRect(points))  # type: ignore[return-value]


def on_colour(rgba: np.ndarray, background, profile: Optional[bytes]) -> np.ndarray:
    """The RGBA cut-out put on ``background`` (a colour or picture, sRGB), in the photo's colour space: the same
    picture ``compose`` makes on that background (its shadow, black over the background, darkens it alike)."""
    options = background_in(replace(CutoutOptions(), background=background), profile)
    alpha = rgba[..., 3].astype(np.float32) * np.float32(1 / 255)
    return on_background(np.ascontiguousarray(rgba[..., :3]), alpha, options.background)


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "image/" not in accept


def removebg_routes(pipeline: Pipeline, max_bytes: int, fetcher: Optional[UrlFetcher],
                    limiter: Optional[RateLimiter]) -> APIRouter:
    """The remove.bg API's routes on ``pipeline``; ``fetcher``: image_url's (None: URLs are refused)."""
    router = APIRouter(prefix="/v1.0", tags=["remove.bg API"])
    predictor = pipeline.predictor

    async def image(fields: Dict[str, str], files: Dict[str, bytes], source: str) -> bytes:
        data = files.get(source) if source in files else decode_b64(fields[source]) if source.endswith("_b64") else None
        if data is not None and not data:
            raise ServeError(400, f"{source} is empty: send the photo's bytes", "invalid_input")
        if data is not None:
            return data
        if fetcher is None:
            raise ServeError(400, f"{source}: this service does not fetch URLs (it was started without "
                                  "--allow-url-fetch); upload the photo as image_file or image_file_b64",
                             "url_fetch_disabled")
        return await fetcher.fetch(fields[source], source)

    def finish(photo: Photo, prob: Union[np.ndarray, Refined], options: RemoveBgOptions,
               picture: Optional[np.ndarray]) -> Answer:
        cut = cut_out(predictor, photo.pixels, prob, options.cutout, limits=pipeline.limits,
                      checkpoint=check_cancelled, profile=photo.profile)
        if not cut.hard.any():
            raise ServeError(400, "no car found in the photo: send a photo of a car (type=car), or a larger one of it",
                             "unknown_foreground")
        rgba = cut.pictures.pop()
        alpha = np.ascontiguousarray(rgba[..., 3])
        background = picture if picture is not None else options.background
        check_cancelled()
        if options.channels == "alpha":
            body = encode(alpha, options.format)
        elif options.format == "zip":
            colour = np.ascontiguousarray(rgba[..., :3]) if background is None else on_colour(rgba, background,
                                                                                              photo.profile)
            body = zip_files({"color.jpg": encode(colour, "jpg", photo.profile),  # remove.bg's ZIP
                              "alpha.png": encode(alpha.copy(), "png")})
        elif background is not None:
            body = encode(on_colour(rgba, background, photo.profile), options.format, photo.profile)
        else:
            body = encode(rgba, options.format, photo.profile)
        return Answer(body, options.format, (alpha.shape[1], alpha.shape[0]), foreground_box(alpha), cut.confidence)

    @router.post("/removebg", response_class=Response, openapi_extra={"requestBody": FORM}, responses={
        200: {"content": {MEDIA_TYPES[fmt]: {} for fmt in ("png", "jpg", "webp", "zip")}, "description":
              "the cut-out (Accept: application/json: {\"data\": {\"result_b64\", \"foreground_*\"}})"},
        400: {"description": "bad input: {\"errors\": [{\"title\", \"code\"}]}"}, 403: {"description": "bad key"},
        429: {"description": "over --rate-limit (Retry-After)"}, 504: {"description": "over --timeout"}})
    async def removebg(request: Request) -> Response:
        """remove.bg's background removal (https://www.remove.bg/api), carseg's model behind it: the car only."""
        with pipeline.deadline():
            fields, files = await read_fields(request, max_bytes)
            options = removebg_options(fields, files)
            photo = await image(fields, files, options.source)
            background = (None if options.background_source is None else
                          await image(fields, files, options.background_source))
            pipeline.check(photo, background, None if options.channels == "alpha" else options.cutout,
                           options.limits_format)
            decoded, picture, prepared = await pipeline.in_pool(pipeline.prepare, photo, background)
            prob, batch_size = await request.app.state.batcher(prepared)
            answer = await pipeline.in_pool(finish, decoded, prob, options, picture)
        left, top, width, height = answer.foreground
        headers = {"X-Type": "car", "X-Width": str(answer.size[0]), "X-Height": str(answer.size[1]),
                   "X-Foreground-Top": str(top), "X-Foreground-Left": str(left),
                   "X-Foreground-Width": str(width), "X-Foreground-Height": str(height), "X-Credits-Charged": "0",
                   "X-Batch-Size": str(batch_size), "X-Confidence": f"{answer.confidence:.4f}"}
        if wants_json(request):
            return JSONResponse({"data": {"result_b64": base64.b64encode(answer.body).decode(), "foreground_top": top,
                                          "foreground_left": left, "foreground_width": width,
                                          "foreground_height": height}}, headers=headers)
        return Response(answer.body, media_type=MEDIA_TYPES[answer.format], headers=headers)

    @router.get("/account")
    async def account(request: Request) -> dict:
        """remove.bg's account answer: carseg counts no credits; both numbers are the calls the key has left this
        minute under --rate-limit (without one, 1000000)."""
        calls = UNLIMITED if limiter is None else limiter.remaining(getattr(request.state, "api_key", b""))
        return {"data": {"attributes": {"credits": {"total": calls, "subscription": calls, "payg": 0, "enterprise": 0},
                                        "api": {"free_calls": calls, "sizes": "all"}}}}

    return router
