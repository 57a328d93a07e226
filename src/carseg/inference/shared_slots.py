"""Photo-sized slots of shared memory that the finishing processes inherit: a photo's refined maps
(``carseg.inference.device_refinement.Refined``) reach its finishing process through a slot, and only the slot's
number through the pipe. Pickled instead, the 4.9 MB of a 1918x1280 photo's maps held the sending process's
interpreter ~1 ms a photo (py-spy, benchmarks/README.md); once a GPU does the rest of a photo's work there, that
process's time per photo bounds the whole run.

Written here because the libraries at hand share memory per array, a new segment for every photo: torch's shared
tensors (tried: creating the segment and passing its file descriptor cost the sender as much as pickling) and
``multiprocessing.shared_memory``. These slots are mapped once, before the processes fork, and reused.
"""
import mmap
import threading
from dataclasses import dataclass
from typing import Iterable, List, Optional, Tuple, Union

import numpy as np

from carseg.inference.device_refinement import Refined

SLOT_PIXELS = 16_000_000  # photos up to 16 megapixels go through a slot (2 bytes a pixel); larger ones are pickled


@dataclass(frozen=True)
class InSlot:
    """A ``Refined`` whose maps wait in a slot: what the pipe carries."""

    slot: int
    shape: Tuple[int, int]
    prob_sum: float
    kept_sum: float
    threshold: float


class Slots:
    """``count`` slots of anonymous shared memory, mapped before the finishing processes fork (they inherit it). Only
    the process that made them hands them out (``put``) and frees them (``release``); a finishing process reads its
    photo's maps in place (``take``)."""

    def __init__(self, count: int, pixels: int = SLOT_PIXELS):
        self.size = 2 * pixels
        self.memory = mmap.mmap(-1, max(1, count) * self.size)  # pages count only once written
        self.free: List[int] = list(range(count))
        self.lock = threading.Lock()  # put in the forwarding thread, release in the pool's result thread

    def _view(self, slot: int, shape: Tuple[int, ...]) -> np.ndarray:
        return np.frombuffer(self.memory, np.uint8, int(np.prod(shape)), slot * self.size).reshape(shape)

    def put(self, refined: Refined) -> Union[Refined, InSlot]:
        """``refined``'s maps copied into a free slot, and the slot's reference; ``refined`` itself when it is too
        large or no slot is free (it is then pickled)."""
        if refined.maps.size > self.size:
            return refined
        with self.lock:
            if not self.free:
                return refined
            slot = self.free.pop()
        np.copyto(self._view(slot, refined.maps.shape), refined.maps)
        return InSlot(slot, refined.shape, refined.prob_sum, refined.kept_sum, refined.threshold)

    def take(self, held: InSlot) -> Refined:
        """The ``Refined`` a slot holds, its maps read in place (valid until the slot is released)."""
        return Refined(self._view(held.slot, (2, *held.shape)), held.prob_sum, held.kept_sum, held.threshold)

    def release(self, held: Iterable[object]) -> None:
        """Free the slots of those of ``held`` that are slot references, once their photos are finished."""
        with self.lock:
            self.free.extend(item.slot for item in held if isinstance(item, InSlot))


def slots_for(count: int) -> Optional[Slots]:
    """``count`` slots, or None where the memory cannot be mapped (the maps are then pickled)."""
    try:
        return Slots(count)
    except (OSError, ValueError, OverflowError):
        return None
