"""The full-resolution edge refinement moves a blurred, misplaced mask edge onto the photo's edge."""
import numpy as np
import pytest

from carseg.inference.guided_filter import guided_filter


def edge_column(prob: np.ndarray) -> float:
    """Where the middle row crosses 0.5 (sub-pixel, linear between the two pixels around it)."""
    row = prob[prob.shape[0] // 2]
    i = int(np.argmax(row > 0.5))
    return i - 1 + (0.5 - row[i - 1]) / (row[i] - row[i - 1])


@pytest.mark.parametrize("offset", [-5, 3, 6])  # full-resolution pixels; RADIUS is 8
def test_edge_moves_onto_the_photo_edge(offset):
    height, width, edge = 256, 384, 200
    photo = np.full((height, width, 3), 40, np.uint8)
    photo[:, edge:] = 200  # the car (bright) starts at column 200
    columns = np.arange(width, dtype=np.float32)
    # an upsampled network output: a 10-pixel ramp centred `offset` pixels off the true edge
    prob = np.clip((columns - (edge - 0.5 + offset)) / 10 + 0.5, 0, 1)[None].repeat(height, 0)
    assert abs(edge_column(prob) - (edge - 0.5 + offset)) < 0.1
    refined = guided_filter(photo, prob)
    assert refined.shape == prob.shape and refined.dtype == np.float32
    error = abs(edge_column(refined) - (edge - 0.5))
    assert error < (1.5 if abs(offset) <= 5 else abs(offset) * 2 / 3)  # onto the edge; edges off by most of the radius: closer
    assert refined[:, : edge - 30].max() < 0.05 and refined[:, edge + 30:].min() > 0.95  # flat areas stay put


def test_tiny_and_flat_photos_keep_their_shape_and_range():
    for height, width in [(1, 1), (8, 8), (120, 4000)]:
        prob = np.random.default_rng(0).random((height, width), dtype=np.float32)
        refined = guided_filter(np.full((height, width), 128, np.uint8), prob)
        assert refined.shape == (height, width) and 0 <= refined.min() and refined.max() <= 1
