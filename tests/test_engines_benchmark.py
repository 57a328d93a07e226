"""benchmarks/train_benchmark.py's GPU section (e), run through its own code on CPU: the engine variants come from
configs/engines/*.yml, one tiny model trains under them, and without CUDA the section is one line."""
import sys

import pytest
import torch

from carseg.training.experiment import Experiment
from carseg.training.models.unet import UNet
from carseg.commands.prepare_dataset import main as prepare

from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import train_benchmark  # noqa: E402


def test_variants_are_the_engine_overlays():
    gpu = train_benchmark.engine_variants("cuda")
    assert list(gpu) == ["fp32", "fp16 AMP", "bf16", "DDP x1"]
    assert gpu["fp32"] == {"_target_": "GPUEngine"} and gpu["fp16 AMP"] == {"_target_": "GPUEngine", "fp16": True}
    assert gpu["bf16"] == {"_target_": "GPUEngine", "bf16": True}
    assert gpu["DDP x1"]["_target_"] == "DistributedDataParallelEngine" and gpu["DDP x1"]["world_size"] == 1
    assert [params["_target_"] for params in train_benchmark.engine_variants("cpu").values()] == [
        "CPUEngine", "CPUEngine", "DistributedDataParallelEngine"]


@pytest.mark.parametrize("variant", ["fp32", "DDP x1"])
def test_measure_engine_trains_a_tiny_model_on_cpu(call, dataset_copy, monkeypatch, variant):
    """The measurement the GPU section runs, with a CPU variant: images/s of the epochs after the first, no GPU
    memory on CPU, a validation Dice; DDP as rank 0 of a world of one in this process."""
    for name in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"):  # DDP's setup sets them
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    assert call(prepare, "--datapath", dataset_copy, "--cache", 64, 96).returncode == 0
    experiment = Experiment(train_csv=str(dataset_copy / "dataset_train.csv"), valid_csv=str(dataset_copy / "dataset_valid.csv"),
                            image_size=[64, 96], batch_size=4, num_workers=0, cached=True)
    result = train_benchmark.measure_engine(train_benchmark.engine_variants("cpu")[variant],
                                            lambda: UNet(base_channels=4, depth=3), experiment.get_loaders(), 2, "cpu")
    assert result["epochs"] == 2 and result["images_per_s"] > 0 and result["peak_gb"] is None
    assert 0.0 <= result["dice"] <= 1.0


def test_without_cuda_the_section_is_one_line(monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert train_benchmark.engines_device("auto") is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("(e) GPU engines: skipped, ") and "not measured" in lines[0]
    assert train_benchmark.engines_device("cpu") == "cpu" and train_benchmark.engines_device("skip") is None
