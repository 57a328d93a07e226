"""OUT = IN: every rerun skips what the earlier runs wrote beside the photos (their own outputs are no inputs), and a
photo carseg did not write is always an input (carseg.inference.background_removal.own_outputs)."""
import csv
import re
from pathlib import Path

from PIL import Image

from carseg.commands.car_segmentation import main as car_segmentation

from conftest import Ran, red_car_photo


def cli(call, folder: Path, model: Path, *flags: str) -> Ran:
    return call(car_segmentation, folder, folder, model, "--quiet", "--workers", "0", *flags)


def tally(ran: Ran) -> str:
    """The summary line without its speed and review count."""
    assert ran.returncode == 0, ran.stderr
    return re.sub(r" \([\d.]+ images/s\).*", "", ran.stdout.strip())


def photos_in(summary: Path) -> list:
    with open(summary, newline="") as handle:
        return [Path(row["photo"]).name for row in csv.DictReader(handle)]


def test_reruns_skip_their_own_outputs(call, tmp_path, oracle_model):
    folder = tmp_path / "photos"
    folder.mkdir()
    for number in range(2):
        Image.fromarray(red_car_photo(60, 90)[0]).save(folder / f"car_{number}.jpg", quality=95)
    originals = {path.name: path.read_bytes() for path in folder.iterdir()}
    runs = [  # flags, the summary line
        (["--save-mask"], "done 2, skipped 0 (already there), failed 0"),
        (["--save-mask"], "done 0, skipped 2 (already there), failed 0"),
        (["--instances"], "done 2, skipped 0 (already there), failed 0, 2 cars cut out"),
        (["--instances"], "done 0, skipped 2 (already there), failed 0, 0 cars cut out"),
        (["--format", "webp"], "done 2, skipped 0 (already there), failed 0"),
        ([], "done 0, skipped 2 (already there), failed 0"),
        (["--overwrite"], "done 2, skipped 0 (already there), failed 0"),
    ]
    for flags, line in runs:
        assert tally(cli(call, folder, oracle_model, *flags)) == line, flags  # summary.csv is not 'ignored' either
    assert sorted(path.name for path in folder.iterdir()) == [
        "car_0.jpg", "car_0.png", "car_0.webp", "car_0_1.png", "car_0_mask.png",
        "car_1.jpg", "car_1.png", "car_1.webp", "car_1_1.png", "car_1_mask.png", "summary.csv"]
    assert all((folder / name).read_bytes() == data for name, data in originals.items())
    assert photos_in(folder / "summary.csv") == ["car_0.jpg", "car_1.jpg"]

    Image.fromarray(red_car_photo(60, 90)[0]).save(folder / "new.jpg")
    assert tally(cli(call, folder, oracle_model)) == "done 1, skipped 2 (already there), failed 0"


def test_a_photo_named_like_an_output_stays_an_input(call, tmp_path, oracle_model):
    """car_mask.png is a photo here (a run listed it as one), not car.jpg's mask: cut out, never overwritten."""
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(red_car_photo(60, 90)[0]).save(folder / "car.jpg")
    Image.fromarray(red_car_photo(50, 80)[0]).save(folder / "car_mask.png")
    photo = (folder / "car_mask.png").read_bytes()
    assert tally(cli(call, folder, oracle_model, "--format", "webp")) == "done 2, skipped 0 (already there), failed 0"
    assert tally(cli(call, folder, oracle_model, "--format", "webp")) == "done 0, skipped 2 (already there), failed 0"
    refused = cli(call, folder, oracle_model, "--format", "webp", "--save-mask")
    assert refused.returncode == 1 and refused.stderr == (
        f"car_segmentation.py: error: {folder / 'car_mask.png'}: writing {folder / 'car.jpg'}'s output there would "
        "overwrite this input; choose another OUT folder\n")
    assert (folder / "car_mask.png").read_bytes() == photo
    assert sorted(photos_in(folder / "summary.csv")) == ["car.jpg", "car_mask.png"]
