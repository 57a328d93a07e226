"""What every cut-out route runs: the service's settings, the checks made from the uploads' headers before any work,
decoding in the codec threads and the request's deadline."""
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Callable, Iterator, List, Optional, Tuple, TypeVar, Union

import anyio
import numpy as np
from anyio.from_thread import check_cancelled

from carseg.data.colour import to_srgb
from carseg.data.images import Photo, brightness
from carseg.inference.device_refinement import Refined, on_device
from carseg.inference.options import CutoutOptions, OutputLimits
from carseg.inference.predictor import Predictor, Prepared
from carseg.serve.photos import ServeError, check_header, decode

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """Limits, batching and access of the service (``catalyst-dl serve`` options; the keys themselves are not here)."""

    max_upload_mb: float = 25.0
    max_megapixels: float = 40.0  # the photo, and each picture of the answer (OutputLimits)
    max_instances: int = 20  # cars in an instances=true answer
    timeout_s: float = 60.0
    max_batch: int = 8  # 1: batching off, one request per forward pass
    max_wait_ms: float = 10.0
    workers: int = 2  # threads that decode photos and encode cut-outs
    rate_limit: Optional[int] = None  # requests a minute per API key (--rate-limit N/min)
    url_fetch: Tuple[str, ...] = ()  # hosts image_url may name (--allow-url-fetch); none: URLs are not fetched
    url_fetch_timeout_s: float = 10.0
    refine_on: str = "auto"  # the full-resolution mask work: on the model's device, in the codec threads ("workers"),
                             # or "auto": the device if a GPU (as car_segmentation.py's --refine-on)


class Pipeline:
    """The service's shared work around one Predictor: header checks, decoding in ``settings.workers`` threads, the
    deadline of ``settings.timeout_s``."""

    def __init__(self, predictor: Predictor, settings: Settings):
        self.predictor, self.settings = predictor, settings
        self.codec = anyio.CapacityLimiter(settings.workers)
        self.max_pixels = int(settings.max_megapixels * 1e6)
        self.limits = OutputLimits(self.max_pixels, settings.max_instances, query=True)
        self.on_device = on_device(settings.refine_on, predictor.device)

    def forward(self, prepared: List[Prepared]) -> List[Union[np.ndarray, Refined]]:
        """One batch's probability maps for ``carseg.inference.step.cut_out``: at network resolution, or refined to
        full size on the model's device (``on_device``)."""
        return self.predictor.refined(prepared) if self.on_device else self.predictor.forward(prepared)

    async def in_pool(self, function: Callable[..., T], *args) -> T:
        """``function(*args)`` in a codec thread; a cancelled request's stops at its next ``check_cancelled``."""
        return await anyio.to_thread.run_sync(function, *args, limiter=self.codec)

    def check(self, photo: bytes, background: Optional[bytes], options: Optional[CutoutOptions],
              fmt: str) -> Tuple[int, int]:
        """Refuse from the uploads' headers what would pass the limits (``options`` None: a mask, no picture); on the
        event loop (no decoding), so a refusal never waits for a thread. The photo's width and height."""
        width, height = check_header(photo, self.max_pixels)
        if options is not None:
            self.limits.check(options, fmt, width, height)
        if background is not None:
            try:
                check_header(background, self.max_pixels)
            except ServeError as exc:
                raise ServeError(exc.status, f"background: {exc}", exc.code) from None
        return width, height

    def prepare(self, photo: bytes, background: Optional[bytes]) -> Tuple[Photo, Optional[np.ndarray], Prepared]:
        """The decoded photo, the background picture in sRGB (as --background's) and the network's input."""
        decoded = decode(photo)
        check_cancelled()
        picture = None if background is None else decode(background)
        check_cancelled()
        picture = None if picture is None else to_srgb(picture.pixels, picture.profile)
        prepared = self.predictor.prepare(decoded.pixels, decoded.profile)
        return decoded, picture, replace(prepared, guide=brightness(decoded.pixels)) if self.on_device else prepared

    @contextmanager
    def deadline(self) -> Iterator[None]:
        """The request's work, stopped where it is after ``settings.timeout_s`` (a 504)."""
        try:
            with anyio.fail_after(self.settings.timeout_s):
                yield
        except TimeoutError:
            raise ServeError(504, f"no answer within {self.settings.timeout_s:g} s (--timeout): the service is busy; "
                                  "retry later or send a smaller photo") from None
