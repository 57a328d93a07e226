"""The photo's subject (main car vs every car), the per-photo confidence, and OUT/summary.csv with its review count."""
import csv
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from carseg.commands.car_segmentation import main as car_segmentation
from carseg.inference.confidence import confidence
from carseg.inference.cutout import CutoutOptions, car_mask, compose
from carseg.inference.subject import main_subject


def two_cars(height=200, width=300):
    """A 0/255 mask: a large car at the centre, a smaller one at the left edge, and a fragment inside the large
    car's box (a post in front split it off)."""
    hard = np.zeros((height, width), np.uint8)
    cv2.rectangle(hard, (100, 80), (230, 150), 255, -1)   # the subject: 131x71 = 9301 px, central
    cv2.rectangle(hard, (0, 20), (60, 90), 255, -1)       # parked at the edge: 61x71 = 4331 px
    cv2.rectangle(hard, (235, 100), (240, 150), 255, -1)  # a piece of the subject beyond a post
    return hard


def test_main_subject_keeps_the_central_car_and_its_fragments():
    hard = two_cars()
    main = main_subject(hard)
    assert main[115, 165] == 255 and main[130, 238] == 255  # the subject and its fragment
    assert not main[:, :61].any()                            # the car at the edge is gone
    assert np.count_nonzero(main) == 131 * 71 + 6 * 51


def test_a_large_car_at_the_edge_beats_a_small_central_one():
    hard = np.zeros((200, 300), np.uint8)
    cv2.rectangle(hard, (0, 40), (140, 190), 255, -1)   # 141x151 at the left edge
    cv2.rectangle(hard, (150, 90), (175, 110), 255, -1)  # 26x21 at the centre, outside the big one's box
    assert main_subject(hard)[100, 160] == 0 and main_subject(hard)[100, 50] == 255


def test_subject_option_in_compose():
    photo = np.full((200, 300, 3), 128, np.uint8)
    prob = two_cars().astype(np.float32) / 255
    main = compose(photo, prob, CutoutOptions(), 0.5)[0][..., 3]
    every = compose(photo, prob, CutoutOptions(subject="all"), 0.5)[0][..., 3]
    assert main[50, 30] == 0 and every[50, 30] == 255 and main[115, 165] == every[115, 165] == 255
    assert len(compose(photo, prob, CutoutOptions(instances=True, instances_min_area=0.001), 0.5)) == 3  # every car
    assert np.array_equal(car_mask(prob, CutoutOptions(subject="all"), 0.5), two_cars())


def test_confidence_ranks_sure_over_hesitant_maps():
    sure = np.zeros((100, 100), np.float32)
    sure[20:80, 20:80] = 0.99
    hesitant = sure * 0.6  # the same region at p = 0.59
    ragged = sure.copy()
    ragged[20:80, 20:50] = 0.45  # half the car just under the threshold
    scores = [confidence(p, (p > 0.5).astype(np.uint8) * 255) for p in (sure, hesitant, ragged)]
    assert scores[0] == pytest.approx(2 * 0.99 * 3600 / (0.99 * 3600 + 3600))
    assert scores[0] > scores[2] > 0 and scores[0] > scores[1] > 0
    assert confidence(np.zeros((10, 10), np.float32), np.zeros((10, 10), np.uint8)) == 0.0  # no car found


def write_photo(path, colour, size=(64, 96)):
    """A photo whose 'car' (an ellipse) has ``colour``: the RedOracle's probability there is known from it."""
    height, width = size
    image = np.zeros((height, width, 3), np.uint8)
    image[:] = (30, 60, 200)
    cv2.ellipse(image, (width // 2, height // 2), (width // 3, height // 4), 0, 0, 360, colour, -1)
    Image.fromarray(image).save(path)


def read_rows(path):
    with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
        return {row["photo"].rsplit("/", 1)[1]: row for row in csv.DictReader(handle)}


def test_summary_csv_confidence_and_review_count(tmp_path, oracle_model, capsys):
    (tmp_path / "in").mkdir()
    write_photo(tmp_path / "in" / "sure.png", (230, 10, 10))     # red: p ~ 1 on the car
    write_photo(tmp_path / "in" / "unsure.png", (150, 60, 85))   # r - b = 0.25: p = sigmoid(-5) under the threshold
    (tmp_path / "in" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    code = car_segmentation([str(tmp_path / "in"), str(out), str(oracle_model), "--quiet", "--workers", "0"])
    line = capsys.readouterr().out.strip()
    assert code == 1  # the broken photo
    rows = read_rows(out / "summary.csv")
    assert rows["sure.png"]["status"] == "done" and float(rows["sure.png"]["confidence"]) > 0.6  # edges upsampled 4x from the 64x96 network grid
    assert 0.05 < float(rows["sure.png"]["car_fraction"]) < 0.3
    assert rows["unsure.png"]["status"] == "done" and float(rows["unsure.png"]["confidence"]) == 0.0  # no car found
    assert rows["broken.jpg"]["status"] == "failed" and "broken.jpg" in rows["broken.jpg"]["error"]
    assert line.endswith(f"1 photo may need a look (confidence < 0.5): see {out / 'summary.csv'}")
    # a second run skips the done photos and keeps their confidence
    car_segmentation([str(tmp_path / "in"), str(out), str(oracle_model), "--quiet", "--workers", "0", "--review-below", "0.99"])
    again = read_rows(out / "summary.csv")
    assert again["sure.png"]["status"] == "skipped" and again["sure.png"]["confidence"] == rows["sure.png"]["confidence"]
    assert capsys.readouterr().out.strip().endswith("2 photos may need a look (confidence < 0.99): see " + str(out / "summary.csv"))


def test_review_below_out_of_range_is_one_line(tmp_path, oracle_model, capsys):
    (tmp_path / "in").mkdir()
    write_photo(tmp_path / "in" / "a.png", (230, 10, 10))
    assert car_segmentation([str(tmp_path / "in"), str(tmp_path / "out"), str(oracle_model), "--review-below", "2"]) == 1
    assert "--review-below 2.0: must be in [0, 1]" in capsys.readouterr().err


def test_odd_file_names_are_processed_and_logged_on_one_line(tmp_path, oracle_model, capsys):
    """A name with a newline and a name that is not UTF-8: both cut out; a broken one is one escaped log line."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_photo(folder / "two\nlines.png", (230, 10, 10))
    write_photo(folder / os.fsdecode(b"caf\xe9.png"), (230, 10, 10))  # Latin-1 bytes: not UTF-8
    (folder / "bad\nname.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "out"
    assert car_segmentation([str(folder), str(out), str(oracle_model), "--quiet", "--workers", "0"]) == 1
    assert (out / "two\nlines.png").is_file() and (out / os.fsdecode(b"caf\xe9.png")).is_file()
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 1 and errors[0].startswith("failed: ") and "bad\\nname.jpg" in errors[0]
    rows = read_rows(out / "summary.csv")
    assert rows["two\nlines.png"]["status"] == "done" and rows["bad\nname.jpg"]["status"] == "failed"
    for shard in ("0/2", "1/2"):  # sharding hashes the names' bytes: the two shards cover every photo once
        car_segmentation([str(folder), str(tmp_path / "shards"), str(oracle_model), "--quiet", "--shard", shard])
    assert sorted(p.name for p in (tmp_path / "shards").glob("*.png")) == sorted(p.name for p in out.glob("*.png"))


def test_photos_over_max_megapixels_fail_from_their_header(tmp_path, oracle_model, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_photo(folder / "small.png", (230, 10, 10), size=(64, 96))     # 6,144 pixels
    write_photo(folder / "large.png", (230, 10, 10), size=(200, 300))   # 60,000 pixels
    code = car_segmentation([str(folder), str(tmp_path / "out"), str(oracle_model), "--quiet", "--max-megapixels", "0.05"])
    errors = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(errors) == 1
    assert errors[0] == f"failed: {folder / 'large.png'}: 300x200 is 0.1 megapixels, over --max-megapixels 0.05; " \
                        "raise the limit if the photo is real, or remove it"
    assert (tmp_path / "out" / "small.png").is_file() and not (tmp_path / "out" / "large.png").exists()


def test_out_not_writable_fails_before_the_model_loads_and_a_folder_in_the_way_is_a_failure(tmp_path, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_photo(folder / "a.png", (230, 10, 10))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    # the model path does not exist: the OUT check must come first to be the error reported
    assert car_segmentation([str(folder), str(blocker / "out"), str(tmp_path / "missing.pth")]) == 1
    assert capsys.readouterr().err.strip() == f"car_segmentation.py: error: {blocker / 'out'}: cannot write there (Not a directory); choose another OUT folder"


def test_a_folder_named_like_an_output_is_a_failure_not_a_skip(tmp_path, oracle_model, capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    write_photo(folder / "a.png", (230, 10, 10))
    (tmp_path / "out" / "a.png").mkdir(parents=True)
    assert car_segmentation([str(folder), str(tmp_path / "out"), str(oracle_model), "--quiet", "--workers", "0"]) == 1
    captured = capsys.readouterr()
    assert "done 0, skipped 0 (already there), failed 1" in captured.out and "a.png" in captured.err
