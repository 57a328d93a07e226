"""catalyst-dl trace: rebuild from the logdir, traced equals eager, metadata, bad logdirs."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from carseg.config import MERGED_CONFIG, load_configs
from carseg.errors import CarsegError
from carseg.inference.backends import load_traced
from carseg.inference.predictor import Predictor
from carseg.registry import registry
from carseg.export.trace import trace_logdir

from conftest import ROOT

TINY_UNET = {"_target_": "UNet", "_var_": "model", "base_channels": 4, "depth": 3}
# imagenet weights in the config must not trigger a download: trace loads the checkpoint instead
SMP_UNET = {"_target_": "smp.Unet", "_var_": "model", "encoder_name": "resnet18", "encoder_weights": "imagenet",
            "decoder_channels": [32, 16, 8, 8, 4]}


def make_logdir(folder: Path, model_params: dict) -> Path:
    """A logdir as ``catalyst-dl run`` leaves it: merged config + a best checkpoint."""
    config = load_configs([ROOT / "configs" / "demo.yml"])
    config["model"] = model_params
    (folder / "configs").mkdir(parents=True)
    (folder / "configs" / MERGED_CONFIG).write_text(yaml.safe_dump(config, sort_keys=False))
    params = {k: v for k, v in model_params.items() if k != "_var_"}
    if "encoder_weights" in params:
        params["encoder_weights"] = None
    model = registry().get_from_params(**params)
    (folder / "checkpoints").mkdir()
    torch.save(model.state_dict(), folder / "checkpoints" / "model.best.pth")
    return folder


@pytest.mark.parametrize("model_params", [TINY_UNET, SMP_UNET])
def test_traced_equals_eager_at_other_sizes(tmp_path, model_params):
    logdir = make_logdir(tmp_path / "logs", model_params)
    out = trace_logdir(logdir)
    assert out == logdir / "trace" / "traced-best-forward.pth"
    traced, meta = load_traced(out)
    assert meta.image_size == (128, 192) and meta.output == "logits" and meta.model == model_params["_target_"]
    eager = registry().get_from_params(**{k: (None if k == "encoder_weights" else v)
                                        for k, v in model_params.items() if k != "_var_"}).eval()
    eager.load_state_dict(torch.load(logdir / "checkpoints" / "model.best.pth"))
    with torch.no_grad():
        for shape in [(1, 3, 128, 192), (2, 3, 96, 320), (1, 3, 512, 768)]:
            x = torch.randn(*shape)
            assert torch.allclose(traced(x), eager(x), atol=1e-4), shape


def test_cli_trace_last_checkpoint_and_out(tmp_path):
    logdir = make_logdir(tmp_path / "logs", TINY_UNET)
    (logdir / "checkpoints" / "model.best.pth").rename(logdir / "checkpoints" / "model.last.pth")
    out = tmp_path / "model.pth"
    result = subprocess.run([sys.executable, "-c", "from carseg.commands.catalyst_dl import main; raise SystemExit(main())", "trace",
                             str(logdir), "--checkpoint", "last", "--image-size", "64", "96", "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "max |traced - eager|" in result.stdout
    assert Predictor(out, device="cpu").metadata.image_size == (64, 96)


def test_bad_logdirs(tmp_path):
    with pytest.raises(CarsegError, match="catalyst-dl run"):
        trace_logdir(tmp_path)
    logdir = make_logdir(tmp_path / "logs", TINY_UNET)
    with pytest.raises(CarsegError, match="model.last.pth: checkpoint not found"):
        trace_logdir(logdir, checkpoint="last")
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Conv2d(3, 1, 1).state_dict(), other)
    with pytest.raises(CarsegError, match="weights do not fit"):
        trace_logdir(logdir, checkpoint=str(other))
