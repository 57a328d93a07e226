"""The Predictor's network input: OpenCV's resize and pad give validation's albumentations transforms' pixels, and
the inference commands import no albumentations (start-up)."""
import subprocess
import sys

import albumentations as A
import cv2
import numpy as np
import pytest

from carseg.data.transforms import resize_longest
from carseg.inference.network_input import fit_longest, pad_to_multiple


@pytest.mark.parametrize("height, width", [(1280, 1918), (1918, 1280), (480, 640), (333, 517), (768, 512),
                                           (512, 768), (50, 75), (300, 4000), (1, 5)])
@pytest.mark.parametrize("max_size, divisor", [(768, 32), (384, 8)])
def test_the_same_pixels_as_training_transforms(height, width, max_size, divisor):
    image = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    resized = resize_longest(max_size)(image=image)["image"]
    padded = A.PadIfNeeded(min_height=None, min_width=None, pad_height_divisor=divisor, pad_width_divisor=divisor,
                           position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0)(image=resized)["image"]
    ours = fit_longest(image, max_size)
    assert ours.shape == resized.shape and np.array_equal(ours, resized)
    assert np.array_equal(pad_to_multiple(ours, divisor), padded)


def test_inference_imports_no_training_stack():
    loaded = subprocess.run([sys.executable, "-c", "import sys, carseg.inference.background_removal, "
                             "carseg.commands.car_segmentation; print(sorted(m for m in ('albumentations', 'catalyst', "
                             "'pandas') if m in sys.modules))"], capture_output=True, text=True, check=True)
    assert loaded.stdout == "[]\n"
