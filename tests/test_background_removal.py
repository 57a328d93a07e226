"""Predictor and bin/car_segmentation.py: sizes, backgrounds, bad inputs, resume, shards."""
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from carseg.commands.car_segmentation import main as car_segmentation
from carseg.data.images import IMAGE_SUFFIXES
from carseg.inference.background_removal import plan_jobs
from carseg.inference.cutout import CutoutOptions, compose
from carseg.errors import CarsegError
from carseg.inference.precision import choose_precision, cpu_has_bf16
from carseg.inference.predictor import Predictor

from conftest import ROOT, Ran, red_car_photo


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    return (a & b).sum() / max((a | b).sum(), 1)


def write_rgb(path: Path, image: np.ndarray, **params) -> Path:
    Image.fromarray(image).save(path, **params)
    return path


@pytest.mark.parametrize("height, width", [(1280, 1918), (333, 517), (8, 8)])
def test_mask_has_the_photo_size_and_matches(oracle_model, height, width):
    image, truth = red_car_photo(height, width)
    mask = Predictor(oracle_model, device="cpu").predict(image)
    assert mask.shape == (height, width) and mask.dtype == np.uint8
    if height > 8:
        assert iou(mask, truth) > 0.97


def test_batch_of_mixed_sizes_and_tta(oracle_model):
    photos = [red_car_photo(333, 517), red_car_photo(400, 300), red_car_photo(64, 96)]
    for tta in ("none", "hflip", "d4"):
        masks = Predictor(oracle_model, device="cpu", tta=tta).predict_batch([p for p, _ in photos])
        for mask, (_, truth) in zip(masks, photos):
            assert mask.shape == truth.shape and iou(mask, truth) > 0.95


def test_forward_equals_the_model_on_a_plain_batch(tmp_path):
    """Predictor.forward normalises the uint8 inputs itself and feeds the network NHWC on CPU; the probabilities must
    equal the model's on training's normalisation (post_transforms)."""
    from carseg.data.transforms import post_transforms
    from carseg.training.models.unet import UNet

    from conftest import save_traced

    torch.manual_seed(0)
    model = UNet(base_channels=4, depth=3).eval()
    traced = save_traced(model, tmp_path / "unet.pth")
    for precision, tolerance in (("fp32", 1e-5), ("bf16", 0.02)):  # bf16: 8 bits of mantissa
        predictor = Predictor(traced, device="cpu", precision=precision)
        photo = red_car_photo(64, 96)[0]
        prepared = [predictor.prepare(photo), predictor.prepare(np.ascontiguousarray(photo[::-1, ::-1]))]
        probs = predictor.forward(prepared)
        with torch.no_grad():
            for p, prob in zip(prepared, probs):
                network_input = post_transforms()(image=p.image)["image"]  # training's normalisation
                expected = torch.sigmoid(model(network_input[None]))[0, 0].numpy()
                assert prob.shape == p.resized_hw and prob.dtype == np.float32
                assert np.abs(prob - expected[: prob.shape[0], : prob.shape[1]]).max() < tolerance, precision


@pytest.mark.parametrize("max_size, expected", [(None, 8), (384, 2), (768, 1)])
def test_default_batch_size_on_cpu_shrinks_with_the_input(tmp_path, max_size, expected):
    from conftest import RedOracle, save_traced

    model = save_traced(RedOracle((0.5,) * 3, (0.25,) * 3), tmp_path / "m.pth", image_size=(128, 192))
    assert Predictor(model, device="cpu", max_size=max_size).default_batch_size == expected


def test_backgrounds():
    image, mask = red_car_photo(20, 30)
    cut = lambda background: compose(image, mask / 255.0, CutoutOptions(background=background, alpha="hard"), 0.5)[0]
    rgba = cut("transparent")
    assert rgba.shape == (20, 30, 4) and (rgba[..., 3] == mask).all() and (rgba[mask > 0, :3] == image[mask > 0]).all()
    assert not rgba[mask == 0].any()  # transparent pixels are black: the photo's background is not kept in the file
    white = cut((255, 255, 255))
    assert (white[mask == 0] == 255).all() and (white[mask > 0] == image[mask > 0]).all()
    green = cut((0, 255, 0))
    assert (green[mask == 0] == (0, 255, 0)).all()


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "bin" / "car_segmentation.py"), *args, "--quiet", "--workers", "1"],
                          capture_output=True, text=True, timeout=300)


def cli(call, *args: object) -> Ran:
    """The same command in this process (decoding too): for refusals and failure lines, no interpreter to start."""
    return call(car_segmentation, *args, "--quiet", "--workers", "0")


@pytest.fixture
def photos(tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for i, (h, w) in enumerate([(160, 240), (333, 517)]):
        write_rgb(folder / f"car_{i}.jpg", red_car_photo(h, w)[0], quality=95)
    return folder


def test_cli_writes_rgba_pngs_at_full_resolution(photos, tmp_path, oracle_model):
    out = tmp_path / "out"
    result = run(str(photos), str(out), str(oracle_model), "--save-mask", "--max-size", "512")
    assert result.returncode == 0, result.stderr
    assert "done 2, skipped 0 (already there), failed 0" in result.stdout
    cut = np.asarray(Image.open(out / "car_1.png"))
    assert cut.shape == (333, 517, 4)
    assert iou(cut[..., 3] > 127, red_car_photo(333, 517)[1]) > 0.97  # JPEG chroma blur costs ~1 px at the edges
    assert np.asarray(Image.open(out / "car_1_mask.png")).shape == (333, 517)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


@pytest.mark.parametrize("background, fmt, channels", [("white", "jpg", 3), ("10,20,30", "webp", 3), ("transparent", "webp", 4)])
def test_cli_background_and_format(photos, tmp_path, oracle_model, background, fmt, channels):
    out = tmp_path / "out"
    result = run(str(photos), str(out), str(oracle_model), "--background", background, "--format", fmt)
    assert result.returncode == 0, result.stderr
    cut = np.asarray(Image.open(out / f"car_0.{fmt}"))
    assert cut.shape[:2] == (160, 240) and (cut.shape[2] if cut.ndim == 3 else 1) == channels


def test_resume_and_overwrite(photos, tmp_path, oracle_model):
    out = tmp_path / "out"
    assert run(str(photos), str(out), str(oracle_model)).returncode == 0
    (out / ".car_0.png.tmp").write_bytes(b"half")  # what an interrupted write leaves
    os.remove(out / "car_0.png")
    second = run(str(photos), str(out), str(oracle_model))
    assert "done 1, skipped 1" in second.stdout
    third = run(str(photos), str(out), str(oracle_model), "--overwrite")
    assert "done 2, skipped 0" in third.stdout


def test_shards_partition_the_folder(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    for i in range(40):
        (folder / ("sub" if i % 3 else "") / f"img {i}.jpg").write_bytes(b"x")
    everything = {job.source for job in plan_jobs(folder, tmp_path / "out", "png", False, True)[0]}
    assert len(everything) == 40
    shards = [{job.source for job in plan_jobs(folder, tmp_path / "out", "png", False, True, (i, 3))[0]} for i in range(3)]
    assert set().union(*shards) == everything and sum(map(len, shards)) == 40 and all(shards)
    for i in range(40, 60):  # files added later join a shard; no earlier file moves to another
        (folder / f"new {i}.jpg").write_bytes(b"x")
    for i, shard in enumerate(shards):
        assert shard <= {job.source for job in plan_jobs(folder, tmp_path / "out", "png", False, True, (i, 3))[0]}


def test_bad_inputs_are_one_line_each_and_the_batch_goes_on(call, tmp_path, oracle_model):
    folder = tmp_path / "in"
    folder.mkdir()
    image, truth = red_car_photo(120, 180)
    write_rgb(folder / "good car ü.jpg", image, quality=95)
    (folder / "zero.jpg").write_bytes(b"")
    good = (folder / "good car ü.jpg").read_bytes()
    (folder / "corrupt.jpg").write_bytes(good[:200] + bytes(range(256)) * 4)
    (folder / "text.jpg").write_text("I am not a picture")
    (folder / "notes.txt").write_text("ignored")
    write_rgb(folder / "gray.png", cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
    write_rgb(folder / "rgba.png", np.dstack([image, np.full(truth.shape, 255, np.uint8)]))
    cv2.imwrite(str(folder / "deep.png"), (image[..., ::-1].astype(np.uint16) * 257))
    Image.fromarray(image).convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    Image.fromarray(np.ascontiguousarray(np.rot90(image, 1))).save(folder / "rotated.jpg", exif=exif, quality=95)
    write_rgb(folder / "tiny.png", image[:8, :8])
    out = tmp_path / "out"
    result = cli(call, folder, out, oracle_model)
    assert result.returncode == 1
    failures = [line for line in result.stderr.splitlines() if line.startswith("failed:")]
    assert len(failures) == 3, result.stderr
    for name in ("zero.jpg", "corrupt.jpg", "text.jpg"):
        assert sum(name in line for line in failures) == 1
    assert "done 7, skipped 0 (already there), failed 3, ignored 1 non-image files" in result.stdout
    for name in ("good car ü", "gray", "rgba", "deep", "cmyk", "rotated"):
        cut = np.asarray(Image.open(out / f"{name}.png"))
        assert cut.shape == (120, 180, 4), name
        if name != "gray":  # gray has no red: nothing is 'car'
            assert iou(cut[..., 3] > 127, truth) > 0.95, name
    assert np.asarray(Image.open(out / "tiny.png")).shape == (8, 8, 4)


def _other_files(folder: Path) -> None:
    (folder / "notes.txt").write_text("not a photo")
    write_rgb(folder / ".hidden.jpg", red_car_photo(40, 60)[0])  # hidden files are never photos to cut out


def _photo_in_a_subfolder(folder: Path) -> None:
    (folder / "sub").mkdir()
    write_rgb(folder / "sub" / "car.jpg", red_car_photo(40, 60)[0])


@pytest.mark.parametrize("make", [lambda folder: None, _other_files, _photo_in_a_subfolder],
                         ids=["empty", "only other and hidden files", "photo only in a subfolder"])
def test_empty_input_folder(call, tmp_path, oracle_model, make):
    """A folder with no photo to cut out is one line, and OUT is not made."""
    folder = tmp_path / "in"
    folder.mkdir()
    make(folder)
    result = cli(call, folder, tmp_path / "out", oracle_model)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == (f"car_segmentation.py: error: {folder}: no images found ({', '.join(IMAGE_SUFFIXES)}); "
                             "use --recursive for subfolders\n")
    assert not (tmp_path / "out").exists()


def test_out_equal_to_in(call, tmp_path, oracle_model, photos):
    write_rgb(photos / "already.png", red_car_photo(50, 60)[0])
    result = cli(call, photos, photos, oracle_model)
    assert result.returncode == 1 and "would overwrite this input" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    os.remove(photos / "already.png")
    allowed = cli(call, photos, photos, oracle_model)  # jpg in, png out: no input can be overwritten
    assert allowed.returncode == 0, allowed.stderr


def test_batch_size_below_one_is_refused(call, photos, tmp_path, oracle_model):
    result = cli(call, photos, tmp_path / "out", oracle_model, "--batch-size", "0")
    assert result.returncode == 1 and result.stderr.strip() == "car_segmentation.py: error: --batch-size 0: must be at least 1"
    assert not (tmp_path / "out").exists()


def test_model_file_errors(call, photos, tmp_path):
    missing = cli(call, photos, tmp_path / "out", tmp_path / "nope.pth")
    assert missing.returncode == 1 and "model file not found" in missing.stderr
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"\x00" * 100)
    invalid = cli(call, photos, tmp_path / "out", garbage)
    assert invalid.returncode == 1 and "not a TorchScript model file" in invalid.stderr
    checkpoint = tmp_path / "model.best.pth"
    torch.save(torch.nn.Conv2d(3, 1, 1).state_dict(), checkpoint)
    raw = cli(call, photos, tmp_path / "out", checkpoint)
    assert raw.returncode == 1 and "catalyst-dl trace" in raw.stderr
    for result in (missing, invalid, raw):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_cli_instances_canvas_shadow(tmp_path, oracle_model):
    """A generated photo with two red cars: two cut-outs on a 160x120 canvas, largest first, counted."""
    photo = np.zeros((200, 300, 3), np.uint8)
    photo[:] = (30, 60, 200)
    cv2.rectangle(photo, (10, 20), (89, 69), (220, 20, 20), -1)
    cv2.rectangle(photo, (120, 40), (289, 179), (220, 20, 20), -1)
    (tmp_path / "in").mkdir()
    write_rgb(tmp_path / "in" / "two.png", photo)
    out = tmp_path / "out"
    result = run(str(tmp_path / "in"), str(out), str(oracle_model), "--instances", "--canvas", "160x120", "--shadow",
                 "--background", "white", "--max-size", "300")
    assert result.returncode == 0, result.stderr
    assert "done 1," in result.stdout and "2 cars cut out" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv", "two_1.png", "two_2.png"]
    first, second = (np.asarray(Image.open(out / f"two_{i}.png")) for i in (1, 2))
    assert first.shape == second.shape == (120, 160, 3)
    red = lambda picture: (picture[..., 0] > 150) & (picture[..., 2] < 100)
    assert np.ptp(np.nonzero(red(first))[0]) > np.ptp(np.nonzero(red(second))[0])  # the 170x140 car is taller when fitted


@pytest.mark.parametrize("option, message", [
    (("--background", "missing.png"), "--background missing.png: not a colour and no such file"),
    (("--canvas", "1600by1200"), "--canvas 1600by1200: give WIDTHxHEIGHT"),
    (("--crop=-5%",), "--crop -5%: give a margin"),
    (("--shadow-strength", "3"), "--shadow-strength 3.0: must be in [0, 1]"),
])
def test_cli_bad_cutout_options_fail_before_any_photo(call, photos, tmp_path, oracle_model, option, message):
    result = cli(call, photos, tmp_path / "out", oracle_model, *option)
    assert result.returncode == 1 and result.stderr.startswith(f"car_segmentation.py: error: {message}")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


@pytest.mark.parametrize("flags, expected", [("fpu sse avx512f avx512_bf16", True), ("fpu amx_bf16 amx_tile", True),
                                             ("fpu sse avx2 avx512f avx512_vnni", False)])
def test_bf16_is_native_only_with_its_instructions(tmp_path, flags, expected):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert cpu_has_bf16(cpuinfo) is expected
    assert cpu_has_bf16(tmp_path / "missing") is False  # not Linux: fp32


def test_precision_choice(monkeypatch):
    monkeypatch.setattr("carseg.inference.precision.cpu_has_bf16", lambda: True)
    assert choose_precision("auto", "cpu", "torchscript") == ("bf16", "auto: the CPU has AVX-512 BF16 or AMX")
    assert choose_precision("fp32", "cpu", "torchscript") == ("fp32", "asked for")
    assert choose_precision("auto", "cpu", "onnx") == ("fp32", "the onnx backend runs fp32")
    monkeypatch.setattr("carseg.inference.precision.cpu_has_bf16", lambda: False)
    assert choose_precision("auto", "cpu", "torchscript") == ("fp32", "auto: the CPU has no native bf16")  # never slower
    with pytest.raises(CarsegError, match="--precision bf16: the onnx backend runs fp32 only"):
        choose_precision("bf16", "cpu", "onnx")


def test_bf16_cut_outs_match_fp32(tmp_path, oracle_model, call):
    """The default precision's masks are fp32's on the oracle's photos, and the choice is said once on stderr."""
    folder = tmp_path / "in"
    folder.mkdir()
    for number, (height, width) in enumerate(((300, 450), (241, 377))):
        Image.fromarray(red_car_photo(height, width)[0]).save(folder / f"car{number}.png")
    masks = {}
    for precision in ("fp32", "bf16"):
        ran = call(car_segmentation, folder, tmp_path / precision, oracle_model, "--precision", precision, "--workers", "0")
        assert ran.returncode == 0 and ran.stderr.count("precision") == 1 and f"precision {precision} (asked for)" in ran.stderr
        masks[precision] = [cv2.imread(str(path), cv2.IMREAD_UNCHANGED)[..., 3] > 0
                            for path in sorted((tmp_path / precision).glob("car*.png"))]
    for a, b in zip(masks["fp32"], masks["bf16"]):
        assert (a & b).sum() / (a | b).sum() >= 0.995


def test_cut_outs_are_bounded_before_the_work(call, tmp_path, oracle_model):
    """Options that would grow a picture past --max-megapixels, or more cars than --max-instances, fail the photo
    with one line naming it and the option; the other photos are cut out."""
    folder = tmp_path / "in"
    folder.mkdir()
    cv2.imwrite(str(folder / "car.png"), red_car_photo(200, 300)[0][..., ::-1])
    ran = call(car_segmentation, folder, tmp_path / "crop", oracle_model, "--crop", "3000%", "--max-megapixels", "1",
               "--workers", "0", "--quiet")
    failed = [line for line in ran.stderr.splitlines() if line.startswith("failed:")]
    assert ran.returncode == 1 and len(failed) == 1 and "car.png" in failed[0] and "--crop 3000%" in failed[0]
    assert not (tmp_path / "crop" / "car.png").exists()
    fleet = np.full((200, 300, 3), (200, 60, 30), np.uint8)  # BGR blue background, six small red cars
    for number in range(6):
        cv2.rectangle(fleet, (10 + 48 * number, 80), (40 + 48 * number, 110), (20, 20, 220), -1)
    cv2.imwrite(str(folder / "fleet.png"), fleet)
    ran = call(car_segmentation, folder, tmp_path / "cars", oracle_model, "--instances", "--instances-min-area", "0",
               "--max-instances", "3", "--workers", "0", "--quiet")
    failed = [line for line in ran.stderr.splitlines() if line.startswith("failed:")]
    assert ran.returncode == 1 and len(failed) == 1 and "fleet.png" in failed[0] and "over --max-instances 3" in failed[0]
    assert (tmp_path / "cars" / "car_1.png").is_file() and not list((tmp_path / "cars").glob("fleet*.png"))
