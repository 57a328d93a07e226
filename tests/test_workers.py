"""--workers: photos finished in worker processes come out as in one process, no worker outlives the run, and a
worker that dies costs only the photos it held."""
import os
import subprocess
import sys

import numpy as np
import psutil
from PIL import Image

from carseg.commands.car_segmentation import main as car_segmentation
from carseg.inference.predictor import Predictor
from carseg.inference.streaming import DIED, stream

from conftest import red_car_photo


def test_outputs_are_the_same_with_any_number_of_workers(tmp_path, oracle_model, call):
    photos = tmp_path / "in"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for number in range(10):
        photo = red_car_photo(150 + 10 * number, 240)[0]
        photo = np.clip(photo + rng.integers(-40, 40, photo.shape), 0, 255).astype(np.uint8)  # edges to refine
        Image.fromarray(photo).save(photos / f"car_{number}.jpg", quality=90)
    children = len(psutil.Process().children(recursive=True))
    outputs = {}
    for workers in (0, 1, 3):
        out = tmp_path / f"out_{workers}"
        # settings that travel to the workers: a threshold that is not the model's, soft edges, a shadow
        ran = call(car_segmentation, photos, out, oracle_model, "--quiet", "--workers", workers, "--batch-size", 2,
                   "--threshold", 0.7, "--alpha", "soft", "--shadow", "--save-mask")
        assert ran.returncode == 0 and ran.stdout.startswith("done 10, skipped 0"), ran
        outputs[workers] = {path.name: path.read_bytes() for path in out.glob("*.png")}
        assert len(psutil.Process().children(recursive=True)) == children  # every worker has exited
    assert len(outputs[0]) == 20 and outputs[1] == outputs[0] and outputs[3] == outputs[0]


def test_a_worker_that_dies_costs_only_the_photos_it_held(oracle_model):
    predictor = Predictor(oracle_model, device="cpu")
    prepared = predictor.prepare(red_car_photo(64, 96)[0])

    def finish(job: int, extras: None, prob: np.ndarray) -> int:
        if job == 4:
            os._exit(1)  # as a crash in a decoder or the out-of-memory killer ends a process
        return job

    results = list(stream(list(range(40)), predictor, lambda job: (prepared, None), finish, batch_size=1, workers=0,
                          progress=False, source=lambda job: f"photo{job}.jpg", finishers=2))
    assert sorted(job for job, _, _ in results) == list(range(40))
    errors = {job: error for job, _, error in results if error}
    assert errors[4] == f"photo4.jpg: {DIED}"
    # the photos sent once the dead worker's were settled went to a new pool: done, in order
    assert [result for job, result, _ in results if job >= 24] == list(range(24, 40))


FORKED_AFTER_OPENCV = """
import cv2, numpy as np, sys
from carseg.inference.predictor import Predictor
from carseg.inference.streaming import stream
cv2.setNumThreads(2)
cv2.GaussianBlur(np.zeros((2000, 2000), np.float32), (31, 31), 0)  # OpenCV's thread pool runs in this process
predictor = Predictor(sys.argv[1], device="cpu")
prepared = predictor.prepare(np.zeros((64, 96, 3), np.uint8))
finish = lambda job, extras, prob: cv2.GaussianBlur(prob, (5, 5), 0).shape
results = list(stream(list(range(8)), predictor, lambda job: (prepared, None), finish, batch_size=2, workers=1,
                      progress=False, finishers=2))
print(sorted(results) == [(job, (64, 96), None) for job in range(8)])
"""


def test_workers_forked_after_opencv_ran_threaded_do_not_hang(oracle_model):
    """Processes forked after OpenCV's thread pool ran (loader and finishing workers, which set OpenCV to one thread)
    hung for good: the fork copies the pool's state, not its threads."""
    ran = subprocess.run([sys.executable, "-c", FORKED_AFTER_OPENCV, str(oracle_model)], capture_output=True,
                         text=True, timeout=120)
    assert (ran.returncode, ran.stdout) == (0, "True\n"), ran.stderr


def test_batches_gather_across_the_loaders_hand_overs(oracle_model):
    """Loaders hand over 8 photos at a time, whatever the batch size (few photos decoded ahead); the forward passes
    still get full batches, and a bad photo among them is its one error."""
    predictor = Predictor(oracle_model, device="cpu")
    prepared = predictor.prepare(red_car_photo(64, 96)[0])
    sizes = []

    def read(job: int):
        if job == 5:
            raise ValueError("corrupt")
        return prepared, None

    def forward(batch):
        sizes.append(len(batch))
        return predictor.forward(batch)

    results = list(stream(list(range(31)), predictor, read, lambda job, extras, prob: job, batch_size=12, workers=1,
                          progress=False, source=lambda job: f"photo{job}.jpg", forward=forward))
    assert sizes == [12, 12, 6]
    assert sorted(job for job, _, _ in results) == list(range(31))
    assert [error for job, _, error in results if error] == ["photo5.jpg: ValueError: corrupt; replace or remove the file"]


def test_a_guide_that_fails_is_its_photos_one_error(oracle_model):
    """With the mask work where the model runs, each photo's brightness is decoded in this process's threads; one that
    cannot be decoded fails its photo alone."""
    predictor = Predictor(oracle_model, device="cpu")
    prepared = predictor.prepare(red_car_photo(64, 96)[0])

    def guide(job: int) -> np.ndarray:
        if job == 3:
            raise ValueError("truncated")
        return np.full((64, 96), 128, np.uint8)

    results = list(stream(list(range(10)), predictor, lambda job: (prepared, job), lambda job, extras, prob: prob.shape,
                          batch_size=4, workers=1, progress=False, source=lambda job: f"photo{job}.jpg",
                          forward=predictor.refined, guide=guide, finishers=2))
    assert sorted(job for job, _, _ in results) == list(range(10))
    assert {job: error for job, _, error in results if error} == {3: "photo3.jpg: ValueError: truncated; replace or remove the file"}
    assert all(shape == (64, 96) for job, shape, error in results if not error)
