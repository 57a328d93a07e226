"""Refined maps travel to the finishing processes through shared slots: what arrives is what was sent, a slot is
reused only once its photo is finished, and what does not fit is pickled instead."""
import os

import numpy as np

from carseg.data.loader import process_pool
from carseg.inference.device_refinement import Refined
from carseg.inference.shared_slots import InSlot, Slots


def refined(height: int, width: int, seed: int) -> Refined:
    maps = np.random.default_rng(seed).integers(0, 256, (2, height, width)).astype(np.uint8)
    return Refined(maps, 12.5, 10.25, 0.5)


_slots = None


def _keep(slots: Slots) -> None:
    global _slots
    _slots = slots


def _read(held: InSlot) -> tuple:
    got = _slots.take(held)
    return os.getpid(), got.maps.copy(), got.prob_sum, got.kept_sum, got.threshold


def test_maps_reach_a_forked_process_through_a_slot():
    slots = Slots(2, pixels=100 * 100)
    pool = process_pool(1, _keep, slots)  # forked after the slots were mapped
    try:
        sent = refined(60, 90, 0)
        held = slots.put(sent)
        assert isinstance(held, InSlot)
        pid, maps, prob_sum, kept_sum, threshold = pool.submit(_read, held).result()
        assert pid != os.getpid() and np.array_equal(maps, sent.maps)
        assert (prob_sum, kept_sum, threshold) == (12.5, 10.25, 0.5)
    finally:
        pool.shutdown()


def test_slots_are_reused_only_once_released_and_what_does_not_fit_is_sent_as_it_is():
    slots = Slots(2, pixels=100 * 100)
    first, second = slots.put(refined(50, 50, 1)), slots.put(refined(50, 50, 2))
    assert isinstance(first, InSlot) and isinstance(second, InSlot) and first.slot != second.slot
    third = refined(50, 50, 3)
    assert slots.put(third) is third  # none free: pickled instead
    assert np.array_equal(slots.take(first).maps, refined(50, 50, 1).maps)  # untouched by the later puts
    slots.release([first, third])  # a task's items: only slot references free a slot
    again = slots.put(third)
    assert isinstance(again, InSlot) and again.slot == first.slot
    assert np.array_equal(slots.take(again).maps, third.maps)
    large = refined(120, 120, 4)
    assert slots.put(large) is large  # over the slot's size
