"""Registry names, models, loss and config validation."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from carseg.compat.engines import GPUEngine
from carseg.config import load_configs, validate
from carseg.errors import CarsegError
from carseg.registry import registry
from carseg.training.losses import BCEDiceLoss
from carseg.training.models.unet import UNet

from conftest import ROOT

REGISTRY = registry()


@pytest.mark.parametrize("name", ["UNet", "smp.Unet", "smp.UnetPlusPlus", "smp.FPN", "smp.Linknet", "smp.DeepLabV3Plus",
                                  "Experiment", "BCEDiceLoss", "AutoEngine", "GPUEngine", "SupervisedRunner",
                                  "DiceCallback", "IOUCallback", "EarlyStoppingCallback", "CSVLogger"])
def test_registered(name):
    assert name in REGISTRY.all()


@pytest.mark.parametrize("params", [
    {"_target_": "UNet", "base_channels": 8, "depth": 3},
    {"_target_": "smp.Unet", "encoder_name": "resnet18", "encoder_weights": None},
    {"_target_": "smp.FPN", "encoder_name": "resnet18", "encoder_weights": None},
    {"_target_": "smp.Linknet", "encoder_name": "mobilenet_v2", "encoder_weights": None},
])
def test_models_build_and_keep_size(params):
    model = REGISTRY.get_from_params(**params).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 1, 64, 96)


def test_scratch_unet_odd_size():
    with torch.no_grad():
        assert UNet(base_channels=4, depth=3)(torch.rand(1, 3, 37, 53)).shape == (1, 1, 37, 53)


def test_bce_dice_loss():
    target = (torch.rand(2, 1, 16, 16) > 0.5).float()
    good, bad = BCEDiceLoss()(target * 20 - 10, target), BCEDiceLoss()(10 - target * 20, target)
    assert good < 0.01 < 0.9 < bad


@pytest.mark.parametrize("config", ["unet.yml", "fpn.yml", "demo.yml", "real.yml", "builtin.yml"])
def test_shipped_configs_validate(config):
    validate(load_configs([ROOT / "configs" / config]), config)


def test_configs_share_their_bases():
    """fpn.yml is unet.yml with another architecture and logdir; demo.yml trains with the same runtime."""
    unet, fpn, demo = (load_configs([ROOT / "configs" / name]) for name in ("unet.yml", "fpn.yml", "demo.yml"))
    assert fpn["model"] == {**unet["model"], "_target_": "smp.FPN"}
    assert {**fpn["run"]["train"], "logdir": "./logs"} == unet["run"]["train"] and fpn["experiment"] == unet["experiment"]
    assert demo["run"]["train"]["callbacks"] == unet["run"]["train"]["callbacks"] and demo["runner"] == unet["runner"]
    assert list(demo) == ["experiment", "model", "criterion", "optimizer", "scheduler", "engine", "runner", "run"]
    assert demo["model"]["_target_"] == "UNet" and demo["run"]["train"]["num_epochs"] == demo["scheduler"]["T_max"] == 10


def test_engine_overlay_merges(tmp_path):
    config = load_configs([ROOT / "configs" / "demo.yml", ROOT / "configs" / "engines" / "gpu_amp.yml"])
    assert config["engine"] == {"_target_": "GPUEngine", "_var_": "engine", "fp16": True}
    assert list(config)[-1] == "run"  # overlay keys keep the base order, so _var_ references resolve


@pytest.mark.parametrize("name", ["GPUEngine", "DataParallelEngine"])
@pytest.mark.parametrize("fp16, expected", [(True, "fp16"), (False, "no")])
def test_fp16_reaches_accelerate_as_mixed_precision(monkeypatch, name, fp16, expected):
    """Catalyst 22.04 passes fp16= to accelerate, which rejects it; carseg's engines pass mixed_precision=.
    (Captured at accelerate.Accelerator: building a real fp16 engine needs a GPU.)"""
    import accelerate

    seen = {}
    monkeypatch.setattr(accelerate.Accelerator, "__init__", lambda self, *args, **kwargs: seen.update(kwargs))
    REGISTRY.get_from_params(_target_=name, fp16=fp16)
    assert "fp16" not in seen and seen.get("mixed_precision") == expected and seen["cpu"] is False


def test_cpu_bf16_engine_autocasts_and_trains_in_fp32():
    """``engine: {bf16: true}`` on CPU (configs/real.yml): forward passes in bfloat16, weights, outputs
    and the loss in fp32, and the checkpointed module is the plain model."""
    import torch.nn as nn

    engine = REGISTRY.get_from_params(_target_="CPUEngine", bf16=True)
    assert engine.state.mixed_precision == "bf16"
    seen = {}
    model = nn.Sequential(nn.Conv2d(3, 1, 3))
    model[0].register_forward_hook(lambda module, inputs, output: seen.update(dtype=output.dtype))
    prepared = engine.prepare_model(model)
    out = prepared(torch.rand(2, 3, 8, 8))
    assert seen["dtype"] == torch.bfloat16 and out.dtype == torch.float32
    assert model[0].weight.dtype == torch.float32 and engine.unwrap_model(prepared) is model
    # accelerate keeps one precision per process: the next engine must still get its own
    assert REGISTRY.get_from_params(_target_="CPUEngine").state.mixed_precision == "no"
    with pytest.raises(ValueError, match="fp16 or bf16"):
        GPUEngine(fp16=True, bf16=True)


def config_with(tmp_path: Path, old: str, new: str, name: str = "demo.yml") -> Path:
    """A copy of configs/ with ``old`` replaced by ``new`` in ``name``; the copied demo.yml (which composes it)."""
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    path = tmp_path / "configs" / name
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    return tmp_path / "configs" / "demo.yml"


MODEL = "_base_/models/carseg_unet.yml"


@pytest.mark.parametrize("name, old, new, fragments", [
    (MODEL, "_target_: UNet", "_target_: UNett", ["model._target_", "unknown name 'UNett'", "did you mean 'UNet'"]),
    (MODEL, "base_channels: 16", "base_chanels: 16", ["model.base_chanels", "did you mean 'base_channels'"]),
    ("demo.yml", "num_epochs: 10", "num_epoch: 10", ["run.train.num_epoch", "did you mean 'num_epochs'"]),
    ("demo.yml", "\noptimizer:", "\noptimiser:", ["unknown section 'optimiser:'", "did you mean 'optimizer'"]),
    ("_base_/default_runtime.yml", "patience: 8", "patiense: 8", ["run.train.callbacks.early_stopping.patiense", "did you mean 'patience'"]),
    ("_base_/default_runtime.yml", "_target_: AutoEngine", "_target_: AutoEngine\n  bf61: true",
     ["engine.bf61", "did you mean 'bf16'", "allowed: fp16, bf16"]),
])
def test_bad_config_names_the_key(tmp_path, name, old, new, fragments):
    path = config_with(tmp_path, old, new, name)
    with pytest.raises(CarsegError) as info:
        validate(load_configs([path]), str(path))
    for fragment in fragments:
        assert fragment in str(info.value)


def test_smp_misspelt_key_is_caught(tmp_path):
    path = config_with(tmp_path, "_target_: UNet\n  _var_: model\n  base_channels: 16\n  depth: 4",
                       "_target_: smp.Unet\n  _var_: model\n  encoder_weigths: null", MODEL)
    with pytest.raises(CarsegError, match="did you mean 'encoder_weights'"):
        validate(load_configs([path]), str(path))


def test_depth_four_resnet_unet_drops_the_stage_it_never_runs():
    params = {"_target_": "smp.Unet", "encoder_name": "resnet18", "encoder_weights": None, "encoder_depth": 4,
              "decoder_channels": [32, 16, 8, 8]}
    model = REGISTRY.get_from_params(**params).eval()
    assert not any(name.startswith("encoder.layer4.") for name in model.state_dict())
    assert sum(p.numel() for p in model.parameters()) < 3_000_000  # ResNet-18's layer4 alone is 8.4M
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 96)).shape == (1, 1, 64, 96)
    full = REGISTRY.get_from_params(_target_="smp.Unet", encoder_name="resnet18", encoder_weights=None).eval()
    assert any(name.startswith("encoder.layer4.") for name in full.state_dict())


def test_base_configs_compose(tmp_path):
    (tmp_path / "_base_").mkdir()
    (tmp_path / "_base_" / "schedule.yml").write_text(
        "run:\n  train:\n    num_epochs: 30\n    logdir: a\nscheduler: {T_max: '${run.train.num_epochs}'}\n")
    (tmp_path / "base.yml").write_text(
        "_base_: _base_/schedule.yml\nmodel: {_target_: UNet, depth: 4}\n"
        "run:\n  train:\n    callbacks:\n      dice: {_target_: DiceCallback, threshold: 0.5}\n"
        "      early_stopping: {_target_: EarlyStoppingCallback, patience: 8}\n")
    (tmp_path / "child.yml").write_text(
        "_base_: [base.yml]\nmodel: {depth: 3}\nrun: {train: {num_epochs: 2, callbacks: {early_stopping: null}}}\n")
    config = load_configs([tmp_path / "child.yml"])
    assert "_base_" not in config
    assert config["model"] == {"_target_": "UNet", "depth": 3}
    assert config["run"] == {"train": {"_call_": "train", "num_epochs": 2, "logdir": "a",
                                       "callbacks": {"dice": {"_target_": "DiceCallback", "threshold": 0.5}}}}
    assert config["scheduler"] == {"T_max": 2}  # ${run.train.num_epochs}, after the child's override
    assert load_configs([tmp_path / "child.yml"], ["run.train.num_epochs=7"])["scheduler"] == {"T_max": 7}
    (tmp_path / "base.yml").write_text("_base_: child.yml\n")
    with pytest.raises(CarsegError, match="include each other"):
        load_configs([tmp_path / "child.yml"])
    (tmp_path / "child.yml").write_text("_base_: missing.yml\n")
    with pytest.raises(CarsegError, match="missing.yml: config file not found"):
        load_configs([tmp_path / "child.yml"])


def test_list_configs_of_older_versions_still_load(tmp_path):
    """run: and callbacks: as lists (carseg's configs before the named mappings, and logdirs they trained) read as
    mappings by call and class name, so an old logdir still traces and an old overlay merges by name."""
    (tmp_path / "old.yml").write_text(
        "run:\n  - _call_: train\n    num_epochs: 3\n    callbacks:\n      - {_target_: DiceCallback, threshold: 0.4}\n"
        "      - {_target_: EarlyStoppingCallback, patience: 8}\n      - {_target_: DiceCallback, prefix: x}\n")
    (tmp_path / "overlay.yml").write_text("run:\n  - _call_: train\n    callbacks:\n      - _target_: EarlyStoppingCallback\n"
                                          "        patience: 2\n")
    run = load_configs([tmp_path / "old.yml", tmp_path / "overlay.yml"])["run"]
    assert list(run) == ["train"] and run["train"]["num_epochs"] == 3
    assert run["train"]["callbacks"] == {"dice": {"_target_": "DiceCallback", "threshold": 0.4},
                                         "early_stopping": {"_target_": "EarlyStoppingCallback", "patience": 2},
                                         "dice_2": {"_target_": "DiceCallback", "prefix": "x"}}


def test_set_changes_one_callback_and_old_list_paths_say_how():
    config = load_configs([ROOT / "configs" / "demo.yml"], ["run.train.callbacks.dice.threshold=0.6"])
    callbacks = config["run"]["train"]["callbacks"]
    assert callbacks["dice"]["threshold"] == 0.6 and callbacks["iou"]["threshold"] == 0.5
    with pytest.raises(CarsegError, match=r"--set run.0.num_epochs: run is a mapping by name now, not a list; "
                                          r"use run.NAME.num_epochs with NAME one of: train"):
        load_configs([ROOT / "configs" / "demo.yml"], ["run.0.num_epochs=5"])


def test_bad_interpolation_names_the_key(tmp_path):
    (tmp_path / "bad.yml").write_text("scheduler: {T_max: '${run.train.num_epoch}'}\nrun: {train: {num_epochs: 3}}\n")
    with pytest.raises(CarsegError, match=r"bad.yml: .*run.train.num_epoch.*\(at scheduler.T_max\)"):
        load_configs([tmp_path / "bad.yml"])


def test_registry_checkpoint_callback_is_carseg_fixed_one():
    from carseg.compat.checkpoint import CheckpointCallback, SupervisedRunner
    from carseg.compat.callbacks import CheckRunCallback

    assert REGISTRY.get("CheckpointCallback") is CheckpointCallback and REGISTRY.get("CheckRunCallback") is CheckRunCallback
    assert REGISTRY.get("SupervisedRunner") is SupervisedRunner


def test_import_carseg_stays_light():
    """Commands start without what they do not use yet (seconds of imports): the folder command's parser without
    torch (--help answers in well under a second), no command without Catalyst. A clean interpreter shows what loads."""
    code = ("import sys, carseg, carseg.commands.car_segmentation; print('torch' in sys.modules); "
            "import carseg.commands.catalyst_dl; print('catalyst' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["False", "False"], result.stderr[-2000:]


def test_real_recipe_overrides_only_what_it_changes():
    config = load_configs([ROOT / "configs" / "real.yml"])
    validate(config, "real.yml")
    unet = load_configs([ROOT / "configs" / "unet.yml"])
    callbacks = config["run"]["train"]["callbacks"]
    assert {**callbacks, "early_stopping": unet["run"]["train"]["callbacks"]["early_stopping"]} == unet["run"]["train"]["callbacks"]
    assert callbacks["early_stopping"]["patience"] == config["run"]["train"]["num_epochs"] == config["scheduler"]["T_max"] == 96
    assert config["model"]["encoder_weights"] is None and config["experiment"]["soft_masks"] is True and config["engine"]["bf16"] is True
    for name in ("real.yml", "general.yml", "builtin.yml"):  # no inherited callback re-listed, no epoch count copied
        text = (ROOT / "configs" / name).read_text()
        assert "_target_: DiceCallback" not in text and "T_max" not in text, name
    # the built-in model is this recipe on all cars: nothing else may differ
    builtin = load_configs([ROOT / "configs" / "builtin.yml"])
    assert builtin["experiment"] == {**config["experiment"], "fit_all": True}
    assert builtin["run"] == {"train": {**config["run"]["train"], "logdir": "./logs/builtin"}}
    assert {k: v for k, v in builtin.items() if k not in ("experiment", "run")} == \
        {k: v for k, v in config.items() if k not in ("experiment", "run")}
