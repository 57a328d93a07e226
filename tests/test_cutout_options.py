"""One schema for the cut-out options: the folder command's flags and the service's query parameters are made from it."""
from typing import Any, Dict, List

import numpy as np
import pytest
from pydantic import ValidationError

from carseg.commands.car_segmentation import build_parser
from carseg.errors import CarsegError
from carseg.inference.cutout import compose
from carseg.inference.options import OPTIONS, CutoutOptions, cutout_options, flag
from carseg.serve.options import RemoveOptions

# A value other than the default for every option, as a user types it.
SAMPLE = {"background": "10,20,30", "alpha": "soft", "crop": "5%", "canvas": "160x120", "shadow": True,
          "shadow_strength": 0.7, "shadow_softness": 0.1, "instances": True, "instances_min_area": 0.05, "subject": "all",
          "keep_metadata": True, "keep_location": True, "format": "webp", "scale": 0.5, "position": "0% 100%",
          "roi": "0% 0% 50% 100%", "megapixels": 0.25}
BAD = {"background": "300,0,0", "alpha": "fuzzy", "crop": "-3", "canvas": "0x10", "shadow_strength": 2,
       "shadow_softness": -1, "instances_min_area": 1.5, "subject": "every", "format": "gif", "scale": 2,
       "position": "up", "roi": "1 2 3", "megapixels": 0}


def flags(values: Dict[str, Any]) -> List[str]:
    return [text for name, value in values.items()
            for text in ([flag(name)] if value is True else [flag(name), str(value)])]


def test_the_command_line_and_the_service_take_the_same_options():
    assert set(SAMPLE) == {option.name for option in OPTIONS}  # a new option needs a sample value here
    defaults = vars(build_parser().parse_args(["IN", "OUT"]))
    query = RemoveOptions.model_fields
    assert set(query) == set(SAMPLE) | {"threshold", "mask"}  # the service's own two: a per-request threshold, the mask
    for option in OPTIONS:
        assert defaults[option.name] == query[option.name].default == option.default, option.name
    given = vars(build_parser().parse_args(["IN", "OUT", *flags(SAMPLE)]))
    assert {name: given[name] for name in SAMPLE} == SAMPLE
    expected = CutoutOptions(background=(10, 20, 30), alpha="soft", crop=(5.0, True), canvas=(160, 120), shadow=True,
                             shadow_strength=0.7, shadow_softness=0.1, instances=True, instances_min_area=0.05,
                             subject="all", keep_metadata=True, keep_location=True, scale=0.5, position=(0.0, 1.0),
                             roi=((0.0, True), (0.0, True), (50.0, True), (100.0, True)), megapixels=0.25)
    assert cutout_options(given) == RemoveOptions(**SAMPLE).cutout() == expected
    assert cutout_options(defaults) == RemoveOptions().cutout() == CutoutOptions()


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_value_one_side_refuses_the_other_refuses_too(name, capsys):
    with pytest.raises((CarsegError, SystemExit)) as refused:  # argparse exits for a value outside its choices
        cutout_options(vars(build_parser().parse_args(["IN", "OUT", *flags({name: BAD[name]})])))
    said = str(refused.value) if refused.type is CarsegError else capsys.readouterr().err
    assert flag(name) in said
    with pytest.raises(ValidationError) as answered:
        RemoveOptions(**{name: BAD[name]})
    assert [problem["loc"] for problem in answered.value.errors()] == [(name,)]


def test_keep_location_alone_is_refused_on_both_sides():
    """The location is kept only inside the EXIF that --keep-metadata keeps: alone, the flag would do nothing."""
    with pytest.raises(CarsegError) as refused:
        cutout_options(vars(build_parser().parse_args(["IN", "OUT", "--keep-location"])))
    assert str(refused.value) == ("--keep-location: the location is kept only in the EXIF that --keep-metadata keeps; "
                                  "add --keep-metadata")
    with pytest.raises(ValidationError) as answered:
        RemoveOptions(keep_location=True, mask=True)  # a mask carries no EXIF, but the request is as wrong
    assert "keep_location=true: the location is kept only in the EXIF that keep_metadata=true keeps" in str(
        answered.value)
    both = build_parser().parse_args(["IN", "OUT", "--keep-metadata", "--keep-location"])
    assert cutout_options(vars(both)).keep_location


def framed(**values: Any) -> np.ndarray:
    """The RGBA cut-out of a 200x100 photo whose car is the box x 20-59, y 40-59 (40x20 px)."""
    prob = np.zeros((100, 200), np.float32)
    prob[40:60, 20:60] = 1
    options = cutout_options({**{option.name: option.default for option in OPTIONS}, **values})
    return compose(np.full((100, 200, 3), 100, np.uint8), prob, options, 0.5)[0]


def car_box(picture: np.ndarray) -> tuple:
    rows, cols = np.nonzero(picture[..., 3])
    return picture.shape[1], picture.shape[0], cols.min(), rows.min(), cols.max() + 1, rows.max() + 1


def test_scale_position_roi_and_megapixels_frame_the_car():
    """scale: the car's box fills that share of the frame (the photo's size without a canvas), centred; position: X%
    Y% of the space around it, at its own size without scale; roi: only the region's part of the car;
    megapixels: the picture scaled down to at most that many pixels, its shape kept."""
    assert car_box(framed(scale=0.5)) == (200, 100, 50, 25, 150, 75)  # 40x20 x 2.5 = 100x50, centred
    assert car_box(framed(scale=0.5, position="0% 50%")) == (200, 100, 0, 25, 100, 75)
    assert car_box(framed(position="100% 100%")) == (200, 100, 160, 80, 200, 100)  # own size, bottom right
    assert car_box(framed(canvas="300x300", position="0% 0%", crop="0")) == (300, 300, 0, 0, 300, 150)
    assert car_box(framed(roi="0 0 40px 100%")) == (200, 100, 20, 40, 40, 60)
    assert not framed(roi="50% 0% 100% 100%")[..., 3].any()  # the car lies left of the region
    small = framed(megapixels=0.01)
    assert small.shape == (70, 141, 4) and set(np.unique(small[..., 3])) == {0, 255}  # hard alpha stays 0/255
    assert framed(megapixels=1).shape == (100, 200, 4)  # never enlarged


def test_framing_options_that_contradict_crop_are_refused():
    with pytest.raises(CarsegError) as refused:
        cutout_options(vars(build_parser().parse_args(["IN", "OUT", "--crop", "5%", "--scale", "0.5"])))
    assert str(refused.value) == ("--scale with --crop: the picture is the car's box, with no room around it; add "
                                  "--canvas or leave --crop out")
    with pytest.raises(ValidationError, match="position with crop"):
        RemoveOptions(crop="5", position="center")
