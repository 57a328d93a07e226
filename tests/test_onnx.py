"""catalyst-dl trace --onnx and the onnxruntime backend: same masks as TorchScript."""
import subprocess
import sys

import numpy as np
from PIL import Image

from carseg.commands.car_segmentation import main as car_segmentation
from carseg.inference.predictor import Predictor
from carseg.export.trace import trace_logdir

from conftest import ROOT, red_car_photo
from test_tracing import TINY_UNET, make_logdir


def test_onnx_agrees_with_torchscript(tmp_path):
    logdir = make_logdir(tmp_path / "logs", TINY_UNET)
    traced = trace_logdir(logdir, onnx=True)
    onnx_file = traced.with_suffix(".onnx")
    assert onnx_file.is_file()
    script, onnx = Predictor(traced, device="cpu", precision="fp32"), Predictor(onnx_file, device="cpu")
    assert onnx.metadata == script.metadata
    photos = [red_car_photo(333, 517)[0], red_car_photo(160, 240)[0]]
    prepared = [script.prepare(p) for p in photos]
    for a, b in zip(script.probabilities(prepared, photos), onnx.probabilities(prepared, photos)):
        assert a.shape == b.shape and np.abs(a - b).max() < 1e-4  # probabilities; logits were checked at 1e-3

    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(photos[0]).save(folder / "car.jpg")
    result = subprocess.run([sys.executable, str(ROOT / "bin" / "car_segmentation.py"), str(folder), str(tmp_path / "out"),
                             str(onnx_file), "--backend", "onnx", "--tta", "hflip", "--quiet", "--workers", "0"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert np.asarray(Image.open(tmp_path / "out" / "car.png")).shape == (333, 517, 4)


def test_bad_onnx_file(call, tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"nope")
    (tmp_path / "in").mkdir()
    Image.fromarray(red_car_photo(40, 60)[0]).save(tmp_path / "in" / "car.jpg")
    result = call(car_segmentation, tmp_path / "in", tmp_path / "out", bad)
    assert result.returncode == 1 and "not a readable ONNX model" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
