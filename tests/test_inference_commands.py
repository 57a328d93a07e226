"""The inference commands' shared options and reruns: --workers below 0, --max-size (once --image-size), --instances
reruns of photos without a car."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from carseg.commands.car_segmentation import main as car_segmentation
from carseg.commands.evaluate import main as evaluate

from conftest import red_car_photo

NOTE = "note: --image-size S is now --max-size S; the old name goes in the next release"


@pytest.fixture
def labelled(tmp_path):
    """One red-car photo and its mask."""
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir()
    masks.mkdir()
    photo, mask = red_car_photo(120, 180)
    Image.fromarray(photo).save(images / "car.png")
    Image.fromarray(mask).save(masks / "car_mask.png")
    return images, masks


@pytest.mark.parametrize("command, args, prog", [
    (car_segmentation, ("IN", "OUT"), "car_segmentation.py"), (evaluate, ("--pairs", "pairs.csv"), "evaluate.py")])
def test_negative_workers_is_one_line(call, command, args, prog):
    ran = call(command, *args, "--workers", "-1")
    assert ran.returncode == 1 and ran.stderr == f"{prog}: error: --workers -1: must be 0 or more\n"


@pytest.mark.parametrize("spelling, note", [("--max-size", False), ("--image-size", True)])
def test_max_size_sets_the_network_input_and_the_old_name_still_works_with_a_note(call, labelled, tmp_path, oracle_model,
                                                                                  spelling, note):
    images, masks = labelled
    report = tmp_path / "scores.json"
    ran = call(evaluate, oracle_model, "--images", images, "--masks", masks, spelling, "160", "--json", report,
               "--workers", "0", "--quiet", "--device", "cpu")
    assert ran.returncode == 0, ran.stderr
    assert json.loads(report.read_text())["max_size"] == 160  # the oracle was traced at 64x96: 96 without the option
    assert ran.stderr.splitlines() == ([f"evaluate.py: {NOTE}"] if note else [])


def test_instances_rerun_skips_photos_done_without_a_car(call, tmp_path, oracle_model):
    photos, out = tmp_path / "in", tmp_path / "out"
    photos.mkdir()
    Image.fromarray(red_car_photo(60, 90)[0]).save(photos / "car.png")
    Image.fromarray(np.full((60, 90, 3), (30, 60, 200), np.uint8)).save(photos / "empty.png")  # no red: no car
    args = (photos, out, oracle_model, "--instances", "--quiet", "--workers", "0", "--device", "cpu")
    first = call(car_segmentation, *args)
    assert first.returncode == 0 and "done 2, skipped 0" in first.stdout and "1 cars cut out" in first.stdout
    assert sorted(p.name for p in out.iterdir()) == ["car_1.png", "summary.csv"]
    again = call(car_segmentation, *args)
    assert again.returncode == 0 and "done 0, skipped 2" in again.stdout
    with open(out / "summary.csv", newline="") as handle:
        rows = {row["photo"]: row for row in csv.DictReader(handle)}
    assert (rows[str(photos / "empty.png")]["status"], rows[str(photos / "empty.png")]["cars"]) == ("skipped", "0")
    third = call(car_segmentation, *args)  # a skipped row with no car is done too
    assert "done 0, skipped 2" in third.stdout
    redone = call(car_segmentation, *args, "--overwrite")
    assert "done 2, skipped 0" in redone.stdout
