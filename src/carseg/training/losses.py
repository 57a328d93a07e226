"""Losses on logits: BCE + soft Dice (smp's Dice; BCE from torch)."""
import torch
from segmentation_models_pytorch.losses import DiceLoss
from torch import nn


class BCEDiceLoss(nn.Module):
    """``bce_weight * BCEWithLogits + dice_weight * (1 - soft Dice)`` for binary masks.

    BCE gives dense per-pixel gradients; Dice optimizes the overlap measure we report and
    is insensitive to the car/background area ratio.
    """

    def __init__(self, bce_weight: float = 0.5, dice_weight: float = 0.5):
        super().__init__()
        self.bce_weight, self.dice_weight = bce_weight, dice_weight
        self.bce = nn.BCEWithLogitsLoss()
        self.dice = DiceLoss(mode="binary", from_logits=True)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.bce_weight * self.bce(logits, targets) + self.dice_weight * self.dice(logits, targets)
