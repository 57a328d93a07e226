"""bin/car_segmentation.py over whole folders: killed mid-folder, subfolders mirrored, the threshold honoured."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import carseg.data.images  # noqa: F401  registers pillow-heif: Pillow writes HEIC here
from conftest import ROOT, red_car_photo
from profiles import display_p3

SCRIPT = [sys.executable, str(ROOT / "bin" / "car_segmentation.py")]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SCRIPT, *args, "--quiet", "--workers", "1"], capture_output=True, text=True, timeout=300)


def test_killed_run_leaves_no_partial_output_and_the_next_completes_it(tmp_path, oracle_model):
    photos, out = tmp_path / "in", tmp_path / "out"
    photos.mkdir()
    for i in range(40):
        Image.fromarray(red_car_photo(720, 1080)[0]).save(photos / f"car_{i:02d}.jpg", quality=90)
    process = subprocess.Popen([*SCRIPT, str(photos), str(out), str(oracle_model), "--quiet", "--workers", "1",
                                "--batch-size", "1"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(out.glob("*.png"))) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)  # the whole job: main process and loader workers, mid-folder
    process.wait()
    finished = sorted(out.glob("*.png"))
    assert 3 <= len(finished) < 40, "the run must be killed mid-folder"
    for path in finished:  # whatever is visible is complete: written to a hidden name, then renamed
        assert np.asarray(Image.open(path)).shape == (720, 1080, 4)

    second = run(str(photos), str(out), str(oracle_model))
    assert second.returncode == 0, second.stderr
    assert f"done {40 - len(finished)}, skipped {len(finished)} (already there), failed 0" in second.stdout
    assert len(list(out.glob("*.png"))) == 40 and not list(out.glob(".*"))  # no temporary file left


def test_recursive_mirrors_subfolders(tmp_path, oracle_model):
    photos, out = tmp_path / "in", tmp_path / "out"
    for relative, (h, w) in {"top.jpg": (60, 90), "a/one.jpg": (64, 96), "a/b/two.png": (50, 80)}.items():
        (photos / relative).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(red_car_photo(h, w)[0]).save(photos / relative)
    flat = run(str(photos), str(tmp_path / "flat"), str(oracle_model))
    assert flat.returncode == 0 and sorted(p.name for p in (tmp_path / "flat").rglob("*.png")) == ["top.png"]
    deep = run(str(photos), str(out), str(oracle_model), "--recursive")
    assert deep.returncode == 0, deep.stderr
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png")) == ["a/b/two.png", "a/one.png", "top.png"]
    assert np.asarray(Image.open(out / "a" / "b" / "two.png")).shape == (50, 80, 4)


def test_threshold_moves_the_cut(tmp_path, oracle_model):
    """The oracle's probability is sigmoid(20 (r - b - 0.5)): pure red ~1, this pink 0.73, the blue background ~0."""
    photo = np.zeros((120, 240, 3), np.uint8)
    photo[:] = (30, 60, 200)
    photo[30:90, 20:100] = (255, 0, 0)
    photo[30:90, 140:220] = (204, 0, 64)  # r - b = 0.55
    (tmp_path / "in").mkdir()
    Image.fromarray(photo).save(tmp_path / "in" / "two.png")
    for threshold, pink_is_car in (("0.5", True), ("0.8", False)):
        out = tmp_path / f"out_{threshold}"
        result = run(str(tmp_path / "in"), str(out), str(oracle_model), "--threshold", threshold, "--save-mask", "--subject", "all")
        assert result.returncode == 0, result.stderr
        mask = np.asarray(Image.open(out / "two_mask.png")) > 0
        assert mask[40:80, 30:90].all() and not mask[:20].any()
        assert mask[40:80, 150:210].all() == pink_is_car and mask[40:80, 150:210].any() == pink_is_car


def test_awkward_folder_runs_to_the_end(tmp_path, oracle_model):
    """Every good photo, however odd its format, gets a cut-out at its own size; every bad file one failed: line."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    photo = Image.fromarray(red_car_photo(64, 96)[0])
    good = {}

    def save(name: str, picture: Image.Image, hw=None, **params) -> None:
        picture.save(folder / name, **params)
        good[name] = hw or (picture.height, picture.width)

    for name, (h, w) in {"tiny_1x1.png": (1, 1), "small_8x8.png": (8, 8), "strip_4000x120.png": (4000, 120)}.items():
        save(name, Image.fromarray(red_car_photo(h, w)[0]))
    save("cmyk.jpg", photo.convert("CMYK"), quality=95)
    save("deep_16bit.png", Image.fromarray(red_car_photo(64, 96)[1].astype(np.uint16) * 257))
    save("palette.png", photo.convert("P"))
    save("one_bit.bmp", photo.convert("1"))
    save("scan.tiff", photo)
    save("modern.webp", photo)
    save("grey.jpg", photo.convert("L"))
    save("alpha.png", photo.convert("RGBA"))
    save("voiture_été_日本.jpg", photo)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    save("rotated.jpg", photo, hw=(96, 64), exif=exif.tobytes())
    save("iphone.heic", photo, hw=(96, 64), exif=exif.tobytes(), icc_profile=display_p3(), quality=90)
    save("android.avif", photo, hw=(96, 64), exif=exif.tobytes(), icc_profile=display_p3(), quality=90)
    save("p3.jpg", photo, icc_profile=display_p3(), quality=95)
    save("broken_profile.jpg", photo, icc_profile=b"not a profile", quality=95)
    (folder / "cut_short.heic").write_bytes((folder / "iphone.heic").read_bytes()[:-200])
    (folder / "fake.avif").write_text("not a photo")
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "truncated.jpg").write_bytes((folder / "voiture_été_日本.jpg").read_bytes()[:300])
    (folder / "text.jpg").write_text("not a photo")
    (folder / "folder.jpg").mkdir()  # a folder is no photo: not a job, not a failure
    os.symlink(tmp_path / "gone.jpg", folder / "dangling.jpg")

    result = run(str(folder), str(out), str(oracle_model))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    failed = sorted(line.split(str(folder) + "/")[1].split(":")[0] for line in result.stderr.splitlines()
                    if line.startswith("failed:"))
    assert failed == ["cut_short.heic", "dangling.jpg", "empty.jpg", "fake.avif", "text.jpg", "truncated.jpg"]
    assert len(result.stderr.strip().splitlines()) == len(failed)  # one line each
    for name, hw in good.items():
        assert np.asarray(Image.open(out / f"{Path(name).stem}.png")).shape == (*hw, 4), name
    assert f"done {len(good)}, skipped 0 (already there), failed 6" in result.stdout
