"""One schema for the cut-out options: the folder command's flags and the service's query parameters are made from it."""
from typing import Any, Dict, List

import pytest
from pydantic import ValidationError

from carseg.commands.car_segmentation import build_parser
from carseg.errors import CarsegError
from carseg.inference.options import OPTIONS, CutoutOptions, cutout_options, flag
from carseg.serve.options import RemoveOptions

# A value other than the default for every option, as a user types it.
SAMPLE = {"background": "10,20,30", "alpha": "soft", "crop": "5%", "canvas": "160x120", "shadow": True,
          "shadow_strength": 0.7, "shadow_softness": 0.1, "instances": True, "instances_min_area": 0.05, "subject": "all",
          "keep_metadata": True, "keep_location": True, "format": "webp"}
BAD = {"background": "300,0,0", "alpha": "fuzzy", "crop": "-3", "canvas": "0x10", "shadow_strength": 2,
       "shadow_softness": -1, "instances_min_area": 1.5, "subject": "every", "format": "gif"}


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
                             subject="all", keep_metadata=True, keep_location=True)
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
