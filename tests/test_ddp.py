"""Distributed training: two CPU processes (gloo) run a tiny epoch through Catalyst's DDP engine, metrics included."""
import socket
from pathlib import Path

import pandas as pd
import yaml

from test_cli import catalyst_dl, overlay, prepared  # noqa: F401 - fixture


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_cpu_ddp(prepared, tmp_path):  # noqa: F811
    engine = tmp_path / "ddp_cpu.yml"
    engine.write_text(yaml.safe_dump({
        "engine": {"_target_": "DistributedDataParallelEngine", "num_node_workers": 2, "port": free_port(),
                   "address": "127.0.0.1", "process_group_kwargs": {"backend": "gloo"}, "cpu": True},
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


def test_gpu_ddp_overlay_is_valid():
    from carseg.config import load_configs, validate

    root = Path(__file__).resolve().parents[1]
    config = load_configs([root / "configs" / "unet.yml", root / "configs" / "engines" / "ddp.yml"])
    assert config["engine"]["_target_"] == "DistributedDataParallelEngine"
    validate(config, "unet.yml + ddp.yml")
