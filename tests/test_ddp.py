"""Distributed training: two CPU processes (gloo) run tiny epochs through Catalyst's DDP engine, bf16 and metrics included."""
import socket

import pandas as pd
import pytest
import torch.distributed as dist
import yaml

from carseg.config import load_configs, validate
from carseg.registry import registry

from conftest import ROOT
from test_cli import catalyst_dl, overlay, prepared  # noqa: F401 - fixture


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_cpu_ddp(prepared, tmp_path):  # noqa: F811
    engine = tmp_path / "ddp_cpu.yml"
    engine.write_text(yaml.safe_dump({
        "engine": {"_target_": "DistributedDataParallelEngine", "num_node_workers": 2, "port": free_port(),
                   "address": "127.0.0.1", "process_group_kwargs": {"backend": "gloo"}, "cpu": True,
                   "bf16": True},  # Catalyst's DDP engine handed bf16 to accelerate: TypeError in each process
    }))
    logdir = tmp_path / "logs"
    result = catalyst_dl("run", "-C", "configs/demo.yml", str(overlay(tmp_path, prepared)), str(engine),
                         "--logdir", str(logdir))
    assert result.returncode == 0, result.stderr[-3000:]
    assert (logdir / "checkpoints" / "model.best.pth").is_file()
    train = pd.read_csv(logdir / "csv_logger" / "train.csv")
    assert len(train) == 2 and train["loss"].notna().all()
    # Dice/IoU are gathered over both processes (carseg's gloo all_gather; Catalyst's needs CUDA).
    valid = pd.read_csv(logdir / "csv_logger" / "valid.csv")
    assert len(valid) == 2 and valid[["dice", "iou"]].apply(lambda c: c.between(0, 1)).all().all()
    assert (logdir / "previews" / "epoch_002.png").is_file()  # drawn by the main process only


@pytest.mark.parametrize("sets, precision", [([], "no"), (["engine.bf16=true"], "bf16"), (["engine.fp16=true"], "fp16")])
def test_ddp_overlay_sets_up_a_process(monkeypatch, sets, precision):
    """configs/engines/ddp.yml as a user overlays it, set up as one process of a world of one on gloo: the
    precision reaches accelerate (Catalyst's engine raised TypeError for fp16/bf16 in every process)."""
    for name in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK"):  # the engine's setup sets them
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    config = load_configs([ROOT / "configs" / "unet.yml", ROOT / "configs" / "engines" / "ddp.yml"],
                          [*sets, "engine.cpu=true", f"engine.port={free_port()}", "engine.process_group_kwargs={backend: gloo}"])
    validate(config, "unet.yml + ddp.yml")
    engine = registry().get_from_params(**{k: v for k, v in config["engine"].items() if k != "_var_"})
    engine.setup(local_rank=0, world_size=1)
    try:
        assert dist.get_backend() == "gloo" and dist.get_world_size() == 1
        assert engine.mixed_precision == precision and engine.device.type == "cpu"
    finally:
        engine.cleanup()
