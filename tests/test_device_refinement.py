"""The full-resolution mask work where the model runs (``--refine-on device``, the default on a GPU) gives the masks,
confidences and cut-outs of the OpenCV path in the workers. Device-agnostic torch: run here on CPU tensors."""
import csv
from dataclasses import replace

import cv2
import httpx
import numpy as np
import pytest
import torch

from carseg.commands import model_options
from carseg.commands.car_segmentation import main as car_segmentation
from carseg.data.images import brightness
from carseg.errors import CarsegError
from carseg.inference import device_refinement
from carseg.inference.background_removal import Job, PhotoWork
from carseg.inference.confidence import confidence
from carseg.inference.cutout import binarize
from carseg.inference.guided_filter import guided_filter
from carseg.inference.options import CutoutOptions
from carseg.inference.predictor import Predictor
from carseg.inference.refinement import Refinement
from carseg.inference.subject import main_subject
from carseg.inference.step import cut_out
from carseg.serve.app import Settings, create_app

from conftest import red_car_photo
from serving import serving_app


def textured_photo(height: int, width: int, seed: int = 0, noise: int = 50) -> np.ndarray:
    """A red 'car' on blue with noise: edges for the guided filter to follow."""
    photo = red_car_photo(height, width)[0].astype(np.int16)
    noise = np.random.default_rng(seed).integers(-noise, noise, photo.shape)
    return np.clip(photo + noise, 0, 255).astype(np.uint8)


def network_map(photo: np.ndarray, size: int = 96) -> np.ndarray:
    """A blurred low-resolution probability map of the photo's red pixels, as a network would give."""
    red = ((photo[..., 0] > 120) & (photo[..., 2] < 120)).astype(np.float32)
    scale = size / max(photo.shape[:2])
    small = cv2.resize(red, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    return cv2.GaussianBlur(small, (5, 5), 0)


@pytest.mark.parametrize("size, small", [((1280, 1918), (320, 479)), ((37, 53), (9, 13)), ((200, 300), (50, 75))])
def test_area_resize_is_opencv_inter_area(size, small):
    image = np.random.default_rng(1).integers(0, 256, size).astype(np.uint8)
    expected = cv2.resize(image, small[::-1], interpolation=cv2.INTER_AREA)  # uint8 in, uint8 out: rounded
    got = device_refinement.area_resize(torch.from_numpy(image).float(), small).round().numpy()
    off = np.abs(got - expected)  # OpenCV's fixed-point weights round a few halves the other way
    assert off.max() <= 1 and off.mean() < 0.01


@pytest.mark.parametrize("radius", [1, 2, 5])
def test_box_mean_is_opencv_box_filter_with_reflected_borders(radius):
    image = np.random.default_rng(2).random((23, 31), dtype=np.float32)
    expected = cv2.boxFilter(image, -1, (2 * radius + 1,) * 2, borderType=cv2.BORDER_REFLECT)
    got = device_refinement.box_mean(torch.from_numpy(image)[None, None], radius)[0, 0].numpy()
    assert np.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("height, width", [(480, 719), (97, 143), (1, 1), (8, 8), (120, 4000)])
def test_guided_filter_in_torch_is_the_opencv_one(height, width):
    photo = textured_photo(height, width)
    prob = network_map(photo) if min(height, width) > 8 else np.random.default_rng(0).random((height, width), np.float32)
    expected = guided_filter(photo, prob)
    gray, prob_map = torch.from_numpy(brightness(photo)), torch.from_numpy(prob)
    got = device_refinement.guided_filter(gray[None], prob_map[None])[0].numpy()
    assert got.shape == expected.shape and 0 <= got.min() and got.max() <= 1
    assert np.abs(got - expected).max() < 2e-3
    hard, ours = expected > 0.5, got > 0.5
    assert (hard & ours).sum() >= 0.999 * (hard | ours).sum()


@pytest.mark.parametrize("refine", ["guided", "none"])
def test_refined_maps_sums_and_confidence(refine):
    """Two cars: the cut-out keeps the main one; the confidence counts the other's probabilities as left out."""
    photo = textured_photo(300, 500)
    photo[20:70, 20:90] = (220, 20, 20)  # a second, smaller car in a corner
    prob = network_map(photo)
    refinement = Refinement(refine, 0.5)
    full = refinement.upsample(prob, photo)
    refined = device_refinement.refine(refinement, [torch.from_numpy(prob)], [brightness(photo)])[0]
    assert refined.shape == (300, 500)
    hard = refined.hard
    assert np.array_equal(hard, binarize(full, 0.5)) or (hard != binarize(full, 0.5)).mean() < 1e-4
    assert np.abs(refined.probabilities() - full).max() < 2e-3
    assert refined.confidence(hard) == pytest.approx(confidence(full, hard), abs=1e-4)
    kept = main_subject(hard)
    assert np.count_nonzero(kept) < np.count_nonzero(hard)  # the corner car is gone
    assert refined.confidence(kept) == pytest.approx(confidence(full, kept), abs=1e-4)
    assert refined.confidence(kept) < refined.confidence(hard) - 0.01  # the corner car counts as left out


def test_cut_out_of_a_refined_map_is_the_workers_cut_out(oracle_model):
    photo = textured_photo(240, 360)
    predictor = Predictor(oracle_model, device="cpu")
    prepared = predictor.prepare(photo)
    prob = predictor.forward([prepared])[0]
    refined = predictor.refined([replace(prepared, guide=brightness(photo))])[0]
    for options in (CutoutOptions(), CutoutOptions(background=(255, 255, 255)), CutoutOptions(alpha="soft"),
                    CutoutOptions(roi=((0.0, True), (0.0, True), (50.0, True), (100.0, True)), crop=(5.0, True))):
        ours, theirs = cut_out(predictor, photo, refined, options), cut_out(predictor, photo, prob, options)
        assert ours.confidence == pytest.approx(theirs.confidence, abs=1e-3)
        assert [p.shape for p in ours.pictures] == [p.shape for p in theirs.pictures]
        differ = np.abs(ours.pictures[0].astype(int) - theirs.pictures[0].astype(int)).max(axis=-1) > 2
        assert differ.mean() < 1e-3, options
    for threshold in (0.3, 0.7):  # another than the map's (a request to the service): from the rounded map
        ours, theirs = cut_out(predictor, photo, refined, threshold=threshold), cut_out(predictor, photo, prob, threshold=threshold)
        assert ours.confidence == pytest.approx(theirs.confidence, abs=1e-3)
        assert np.count_nonzero(ours.hard != theirs.hard) <= 1e-3 * np.count_nonzero(theirs.hard)
        assert np.count_nonzero(ours.hard) != np.count_nonzero(cut_out(predictor, photo, refined).hard)


def photos_folder(folder, count=6):
    folder.mkdir()
    for number in range(count):
        # noise that stays inside 0-255: where colours clip, libjpeg's grey (the device route's guide) and the grey
        # of its colours differ more than the usual rounding
        photo = textured_photo(150 + 20 * number, 260, number, noise=15)
        cv2.imwrite(str(folder / f"car_{number}.jpg"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    return folder


def test_folder_runs_refined_on_the_device_match_the_workers(tmp_path, oracle_model, call):
    photos = photos_folder(tmp_path / "in")
    runs = {}
    for refine_on, workers in (("workers", 2), ("device", 0), ("device", 2)):
        out = tmp_path / f"out_{refine_on}_{workers}"
        ran = call(car_segmentation, photos, out, oracle_model, "--quiet", "--save-mask", "--workers", workers,
                   "--refine-on", refine_on, "--background", "white", "--format", "jpg")
        assert ran.returncode == 1 and ran.stdout.startswith("done 6, skipped 0 (already there), failed 1"), ran
        assert ran.stderr.count("failed: ") == 1 and "broken.jpg" in ran.stderr  # one line for the bad photo, the rest done
        rows = {row["photo"].rsplit("/", 1)[-1]: row for row in csv.DictReader(open(out / "summary.csv"))}
        runs[refine_on, workers] = {name: (cv2.imread(str(out / name.replace(".jpg", "_mask.png")), 0),
                                           float(row["confidence"] or 0)) for name, row in rows.items()
                                    if row["status"] == "done"}
    assert len(runs["workers", 2]) == 6
    for key in (("device", 0), ("device", 2)):
        for name, (mask, score) in runs["workers", 2].items():
            theirs, their_score = runs[key][name]
            both, either = np.count_nonzero(mask & theirs), np.count_nonzero(mask | theirs)
            assert both >= 0.999 * either and abs(score - their_score) <= 1e-3, (key, name)
    # in this process or sent to worker processes: the same bytes
    assert all(np.array_equal(runs["device", 0][name][0], runs["device", 2][name][0]) for name in runs["device", 0])


def test_photo_work_refines_on_the_device_when_asked_or_on_a_gpu(oracle_model, tmp_path):
    predictor = Predictor(oracle_model, device="cpu")
    assert not PhotoWork(predictor).on_device and PhotoWork(predictor, refine_on="device").on_device
    with pytest.raises(CarsegError, match="--refine-on gpu: choose one of auto, device, workers"):
        PhotoWork(predictor, refine_on="gpu")
    assert model_options.REFINE_ON == device_refinement.REFINE_ON  # the options' copy (kept import-free) names the same places
    photos = photos_folder(tmp_path / "in", 2)
    jobs = [Job(path, tmp_path / f"{path.stem}.png", None) for path in sorted(photos.iterdir())]
    rows = PhotoWork(predictor, refine_on="device").run(jobs)  # what a Ray actor runs
    assert [row.status for row in rows] == ["failed", "done", "done"]
    assert all((tmp_path / f"car_{n}.png").is_file() for n in range(2))


def test_the_service_refines_on_the_device_as_in_its_threads(oracle_model):
    """The service's batches take the same route (Settings.refine_on; auto: the device on a GPU): the same masks,
    confidences and cut-outs, also for a threshold other than the model's and a second car left out."""
    photo = textured_photo(160, 240)
    photo[5:25, 5:45] = (220, 20, 20)  # a small car in the corner: not the photo's subject
    body = cv2.imencode(".png", cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))[1].tobytes()
    answers, refined = {}, {}
    for refine_on in ("workers", "device"):
        predictor = Predictor(str(oracle_model), device="cpu")
        refine, refined[refine_on] = predictor.refined, []
        predictor.refined = lambda prepared: refined[refine_on].append(len(prepared)) or refine(prepared)
        app = create_app(predictor, Settings(refine_on=refine_on))
        with serving_app(app) as url, httpx.Client(base_url=url, timeout=60) as http:
            post = lambda **params: http.post("/api/remove", params=params, files={"file": ("car.png", body)})
            answers[refine_on] = [(float(response.headers["x-confidence"]), cv2.imdecode(
                np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)) for response in
                (post(mask="true"), post(mask="true", threshold="0.8"), post(background="white", format="png"))]
    for (score, image), (their_score, theirs) in zip(answers["device"], answers["workers"]):
        assert abs(score - their_score) <= 1e-3 and image.shape == theirs.shape
        diff = np.abs(image.astype(int) - theirs.astype(int))
        assert ((diff.max(axis=-1) if diff.ndim == 3 else diff) > 2).mean() < 1e-3
    assert answers["device"][0][1][15, 25] == 0  # the corner car is left out
    assert sum(refined["device"]) == 3 and not refined["workers"]
