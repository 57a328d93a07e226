"""Models under short registry names: the from-scratch ``UNet`` and ``smp.<Architecture>``."""
from typing import Dict, Type

import segmentation_models_pytorch as smp
from torch import nn

from carseg.models.unet import UNet

SMP_ARCHITECTURES = ("Unet", "UnetPlusPlus", "FPN", "Linknet", "PSPNet", "PAN", "MAnet",
                     "DeepLabV3", "DeepLabV3Plus", "UPerNet", "Segformer", "DPT")


def model_factories() -> Dict[str, Type[nn.Module]]:
    """Registry name -> model class; smp models take any ``encoder_name`` smp knows."""
    factories = {"UNet": UNet}
    factories.update({f"smp.{name}": getattr(smp, name) for name in SMP_ARCHITECTURES if hasattr(smp, name)})
    return factories
