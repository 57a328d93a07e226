"""Cut-out options with known answers: soft edges, no halo, crop, canvas, backdrop image, shadow, instances, bad values."""
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from carseg.errors import CarsegError
from carseg.inference.cutout import compose, on_background, on_mask
from carseg.inference.matting import BAND, edge_band
from carseg.inference.options import CutoutOptions, parse_background, parse_canvas, parse_crop

RED, GREEN, WHITE = np.array([200, 20, 20]), np.array([20, 200, 20]), np.array([255, 255, 255])


def car_on_wall(height: int = 200, width: int = 300, boxes=((60, 50, 240, 150),), blur: float = 1.5):
    """Red cars (rectangles with rounded corners) on a green wall with soft edges: the photo and its true alpha."""
    mask = np.zeros((height, width), np.uint8)
    for x0, y0, x1, y1 in boxes:
        cv2.rectangle(mask, (x0, y0), (x1 - 1, y1 - 1), 255, -1)
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), blur) if blur else mask / 255.0
    photo = (alpha[..., None] * RED + (1 - alpha[..., None]) * GREEN + 0.5).astype(np.uint8)
    return photo, alpha.astype(np.float32)


def test_soft_alpha_is_intermediate_only_near_the_edge_and_exact_inside():
    photo, truth = car_on_wall()
    alpha = compose(photo, truth, CutoutOptions(alpha="soft"), 0.5)[0][..., 3]
    hard = compose(photo, truth, CutoutOptions(alpha="hard"), 0.5)[0][..., 3]
    partial = (alpha > 0) & (alpha < 255)
    assert partial.sum() > 500  # the whole rim of the car
    assert not (partial & ~edge_band((truth > 0.5).astype(np.uint8) * 255, BAND)).any()
    assert set(np.unique(hard)) == {0, 255}
    assert np.abs(alpha / 255.0 - truth).mean() < np.abs(hard / 255.0 - truth).mean() / 2


def test_no_green_rim_on_white():
    photo, truth = car_on_wall()
    expected = truth[..., None] * RED + (1 - truth[..., None]) * WHITE  # the car as if shot in front of white
    rim = (truth > 0.05) & (truth < 0.95)
    for alpha, limit in (("soft", 20), ("hard", None)):
        out = compose(photo, truth, CutoutOptions(background=(255, 255, 255), alpha=alpha), 0.5)[0].astype(float)
        greenness = out[..., 1] - out[..., 2]  # ~0 on the red car and on white, high where green shows through
        if limit is None:
            assert greenness[rim].max() > 60  # the hard cut keeps the green-tinted edge pixels
        else:
            assert greenness[rim].max() < limit and np.abs(out - expected)[rim].mean() < 12


def test_crop_is_tight_plus_margin_and_canvas_has_its_size():
    photo, truth = car_on_wall()  # car box 180x100, alpha > 0 a little wider through the blur
    hard = CutoutOptions(alpha="hard")
    assert compose(photo, truth, CutoutOptions(alpha="hard", crop=(10, False)), 0.5)[0].shape == (120, 200, 4)
    assert compose(photo, truth, CutoutOptions(alpha="hard", crop=(10, True)), 0.5)[0].shape == (120, 216, 4)
    assert compose(photo, truth, hard, 0.5)[0].shape == (200, 300, 4)
    out = compose(photo, truth, CutoutOptions(alpha="hard", canvas=(160, 120), background=(0, 0, 255)), 0.5)[0]
    assert out.shape == (120, 160, 3)
    car = np.nonzero((out[..., 0] > 150) & (out[..., 2] < 100))
    # 180x100 + 5% margin fitted into 160x120: width-bound, centred vertically
    assert abs(car[1].min() - (160 - 160 / 1.1) / 2) <= 2 and abs((car[0].min() + car[0].max()) / 2 - 60) <= 2


def test_crop_reaching_outside_the_photo_is_padded_transparent():
    photo, truth = car_on_wall(boxes=((0, 50, 240, 150),), blur=0)
    out = compose(photo, truth, CutoutOptions(alpha="hard", crop=(20, False)), 0.5)[0]
    assert out.shape == (140, 280, 4) and (out[:, :20, 3] == 0).all() and (out[20:-20, 20:-20, 3] == 255).all()


def test_background_image_covers_the_picture(tmp_path):
    photo, truth = car_on_wall()
    backdrop = np.zeros((50, 50, 3), np.uint8)
    backdrop[:, :25] = (0, 0, 255)
    backdrop[:, 25:] = (255, 255, 0)
    Image.fromarray(backdrop).save(tmp_path / "wall.png")
    out = compose(photo, truth, CutoutOptions(background=parse_background(str(tmp_path / "wall.png"))), 0.5)[0]
    assert out.shape == (200, 300, 3)  # 50x50 scaled to cover 300x200, centre-cropped: left half blue, right yellow
    assert (out[5, 5] == (0, 0, 255)).all() and (out[5, -5] == (255, 255, 0)).all()


def test_shadow_darkens_only_under_the_car():
    photo, truth = car_on_wall()
    plain = compose(photo, truth, CutoutOptions(background=(255, 255, 255)), 0.5)[0]
    shaded = compose(photo, truth, CutoutOptions(background=(255, 255, 255), shadow=True, shadow_strength=0.6), 0.5)[0]
    assert (plain[truth == 0] == 255).all()
    below, above = shaded[151:156, 100:200], shaded[20:45, :]
    assert below.mean() < 230 and (above == 255).all()
    rgba = compose(photo, truth, CutoutOptions(shadow=True), 0.5)[0]
    assert rgba[155, 150, 3] > 0 and (rgba[155, 150, :3] < 10).all()  # a black, half-transparent shadow
    none = compose(photo, truth, CutoutOptions(background=(255, 255, 255), shadow=True, shadow_strength=0), 0.5)[0]
    assert (none == plain).all()


def test_instances_largest_first_and_min_area():
    photo, truth = car_on_wall(boxes=((10, 20, 90, 70), (120, 40, 290, 180), (5, 150, 12, 156)))
    pictures = compose(photo, truth, CutoutOptions(alpha="hard", instances=True, crop=(0, False)), 0.5)
    assert [p.shape[:2] for p in pictures] == [(140, 170), (50, 80)]  # the 7x6 speck is under 1% of the photo
    assert compose(photo, np.zeros_like(truth), CutoutOptions(instances=True), 0.5) == []


@pytest.mark.parametrize("parse, text, message", [
    (parse_crop, "-3", "--crop -3: give a margin"), (parse_crop, "2.5", "--crop 2.5"), (parse_crop, "abc%", "--crop abc%"),
    (parse_canvas, "1600", "--canvas 1600: give WIDTHxHEIGHT"), (parse_canvas, "0x10", "--canvas 0x10"),
    (parse_background, "300,0,0", "--background 300,0,0: not a colour"), (parse_background, "nofile.png", "--background nofile.png"),
])
def test_bad_values_name_the_option(parse, text, message):
    with pytest.raises(CarsegError) as info:
        parse(text)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)


def test_parsing_good_values(tmp_path: Path):
    assert parse_crop("40") == (40, False) and parse_crop("5%") == (5, True)
    assert parse_canvas("1600x1200") == (1600, 1200)
    assert parse_background("white") == (255, 255, 255) and parse_background("1,2,3") == (1, 2, 3)
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    with pytest.raises(CarsegError, match="--background .*broken.jpg"):
        parse_background(str(tmp_path / "broken.jpg"))
    with pytest.raises(CarsegError, match="--alpha fuzzy: choose one of soft, hard"):
        CutoutOptions(alpha="fuzzy")
    with pytest.raises(CarsegError, match=r"--shadow-strength 2: must be in \[0, 1\]"):
        CutoutOptions(shadow_strength=2)


def test_edge_metrics_known_answers():
    from carseg.evaluation.metrics import boundary_iou, scores

    truth = np.zeros((40, 40), np.uint8)
    truth[10:30, 10:30] = 1
    assert boundary_iou(truth, truth) == 1.0 and scores(truth.astype(np.float32), truth)["alpha_mae"] == 0.0
    shifted = np.roll(truth, 2, axis=1)  # an edge 2 px off: Dice barely notices, the boundary IoU does
    exact, off = scores(truth, truth), scores(shifted, truth)
    assert off["dice"] == pytest.approx(0.9) and off["boundary_iou"] < 0.75
    half = truth.astype(np.float32)
    half[10:30, 30] = 0.5  # a half-covered column just outside the car
    soft = scores(half, truth)
    assert soft["alpha_mae"] == pytest.approx(10 / 1600) and soft["dice"] == pytest.approx(800 / 810)
    assert exact["boundary_iou"] > soft["boundary_iou"] > off["boundary_iou"]


@pytest.mark.parametrize("background", ["transparent", (255, 255, 255), (10, 200, 30), "picture"])
def test_a_hard_mask_is_copied_onto_the_background_as_it_would_be_blended(background):
    """on_mask, the hard-edged cut-out's fast path, gives on_background's pixels for alpha = mask / 255."""
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (120, 170, 3)).astype(np.uint8)
    mask = (rng.random((120, 170)) > 0.5).astype(np.uint8) * 255
    if background == "picture":
        background = rng.integers(0, 256, (50, 80, 3)).astype(np.uint8)
    expected = on_background(photo, mask.astype(np.float32) / 255, background)
    assert np.array_equal(on_mask(photo, mask, background), expected)
    assert np.array_equal(compose(photo, None, CutoutOptions(background=background), 0.5, mask), [expected])
