"""The Predictor: a traced model file in, full-resolution masks and cut-outs out.

Only the TorchScript file written by ``catalyst-dl trace`` is needed (no model code); its
metadata says how to preprocess (size, normalisation) and how to read the output. Without a
file, a built-in model is used by name (``carseg.inference.backends.BUILTIN_MODELS``; default ``general``).
"""
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import ttach
from torch import nn

from carseg.data.colour import to_srgb
from carseg.data.images import image_size, read_photo
from carseg.errors import CarsegError
from carseg.inference.backends import Backend, backend_for, load_model
from carseg.inference.cutout import binarize
from carseg.inference.device_refinement import Refined, refine
from carseg.inference.network_input import fit_longest, pad_to_multiple
from carseg.inference.options import CutoutOptions
from carseg.inference.precision import choose_precision
from carseg.inference.refinement import Refinement
from carseg.inference.step import cut_out

GPU_BATCH = 32  # photos per forward pass on a GPU (see Predictor.default_batch_size)
CPU_BATCH_PIXELS = 8 * 128 * 192  # network input pixels per forward pass on CPU (see Predictor.default_batch_size)
TTA_TRANSFORMS = {"none": None, "hflip": ttach.aliases.hflip_transform, "d4": ttach.aliases.d4_transform}


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise CarsegError("--device cuda: no CUDA device here; use --device cpu or auto")
    return device


class _Probabilities(nn.Module):
    """Model output -> probabilities, so test-time augmentation averages probabilities."""

    def __init__(self, model: Backend, logits: bool):
        super().__init__()
        self.model, self.logits = model, logits

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.model(x)
        return torch.sigmoid(out) if self.logits else out


@dataclass
class Prepared:
    """One preprocessed image: the network input before normalisation and the size of the photo inside it."""

    image: np.ndarray  # H' x W' x 3 uint8 (sRGB), H' and W' multiples of the size divisor: 4x fewer bytes than the
                       # normalised floats to hand from a loader worker or copy to a GPU; forward normalises them
    resized_hw: Tuple[int, int]
    guide: Optional[np.ndarray] = None  # for ``refined``: the photo's brightness at full size (H x W uint8)


class Predictor:
    """Runs a traced segmentation model on photos of any size (batched, CPU or GPU, optional TTA).

    ``backend``: ``torchscript`` (``catalyst-dl trace``'s .pth), ``onnx`` (``--onnx``'s .onnx, run by
    onnxruntime) or ``auto`` (by the file's suffix). ``model``: a path, or a built-in model's name (None: ``general``).
    ``refine``: ``guided`` (default) moves the upsampled edges onto the photo's edges, ``none`` keeps them bilinear.
    ``max_size``: the photo's longest side at the network's input (None: the longest side the model was trained at).
    ``precision``: the forward pass's number format, ``auto`` (bf16 where the hardware has it natively), ``fp32`` or
    ``bf16`` (:mod:`carseg.inference.precision`); ``self.precision`` and ``self.precision_reason`` say what was chosen.
    """

    def __init__(self, model: Union[None, str, Path] = None, device: str = "auto", tta: str = "none",
                 threshold: Optional[float] = None, max_size: Optional[int] = None, backend: str = "auto",
                 refine: str = "guided", precision: str = "auto"):
        if tta not in TTA_TRANSFORMS:
            raise CarsegError(f"--tta {tta}: choose one of {', '.join(TTA_TRANSFORMS)}")
        Refinement(refine)  # a bad refine fails before the model is loaded
        self.device = resolve_device(device)
        self.backend = backend_for(model, backend)
        self.precision, self.precision_reason = choose_precision(precision, self.device, self.backend)
        self.runtime = load_model(model, self.backend, self.device)
        self.metadata = self.runtime.metadata
        self.threshold = self.metadata.threshold if threshold is None else threshold
        self.refinement = Refinement(refine, self.threshold)
        self.max_size = max_size or max(self.metadata.image_size)
        # Same steps as validation (resize longest side, normalize); padding goes bottom/right
        # up to a multiple of the network stride, so any aspect ratio works.
        self.divisor = self.metadata.size_divisor
        # training's Normalize (post_transforms: (x / 255 - mean) / std) as one multiply-add on the device
        mean, std = (torch.tensor(values, dtype=torch.float32).view(1, 3, 1, 1)
                     for values in (self.metadata.mean, self.metadata.std))
        self.scale, self.shift = (1 / (255 * std)).to(self.device), (mean / std).to(self.device)
        model: nn.Module = _Probabilities(self.runtime, self.metadata.output == "logits")
        if TTA_TRANSFORMS[tta] is not None:
            model = ttach.SegmentationTTAWrapper(model, TTA_TRANSFORMS[tta](), merge_mode="mean")
        self.model = model.eval()

    @property
    def default_batch_size(self) -> int:
        """Photos per forward pass: 32 on GPU (issue 25: batches of 32-128 run at the GPU's rate; not measured here);
        on CPU fewer as the input grows, because the
        per-photo cost grows with the batch once activations outgrow the caches (CLI on 2 cores:
        smp Unet-resnet34 at 512x768 1.2 images/s at batch 1-2, 1.05 at 8; the demo's 128x192
        UNet 12.1 at 8, 9.7 at 1). 8 at 128x192, 2 at 256x384, 1 at 512x768."""
        if self.device != "cpu":
            return GPU_BATCH
        trained_hw = self.metadata.image_size
        input_pixels = trained_hw[0] * trained_hw[1] * (self.max_size / max(trained_hw)) ** 2
        return int(max(1, min(8, CPU_BATCH_PIXELS // input_pixels)))

    def prepare(self, image: np.ndarray, profile: Optional[bytes] = None) -> Prepared:
        """RGB uint8 H x W x 3 -> network input (safe to run in a DataLoader worker). ``profile``: the ICC profile
        ``image`` is in (None: sRGB); the network sees sRGB, as it was trained (``carseg.data.colour``), converted
        once resized."""
        resized = to_srgb(fit_longest(image, self.max_size), profile)
        return Prepared(np.ascontiguousarray(pad_to_multiple(resized, self.divisor)), resized.shape[:2])

    def read(self, path: Path, full_hw: Optional[Tuple[int, int]] = None) -> Prepared:
        """A photo file -> network input, without decoding it at full size (safe in a DataLoader worker).

        JPEGs are decoded at the smallest libjpeg scale that still covers the network size, as in
        training: ~3x less work than a full decode and resize for a 1918x1280 photo. ``full_hw``: the photo's size
        from its header, when the caller has read it already.
        """
        if Path(path).suffix.lower() not in (".jpg", ".jpeg"):
            photo = read_photo(path)
        else:
            full_hw = full_hw or image_size(path)  # from the header
            scale = min(1.0, self.max_size / max(full_hw))
            photo = read_photo(path, target_hw=(round(full_hw[0] * scale), round(full_hw[1] * scale)), full_hw=full_hw)
        return self.prepare(photo.pixels, photo.profile)

    @torch.inference_mode()
    def forward(self, prepared: Sequence[Prepared]) -> List[np.ndarray]:
        """Probability maps (float32) at network resolution, each cropped to its photo's resized area."""
        probs = self._forward(prepared).cpu()
        return [prob[: p.resized_hw[0], : p.resized_hw[1]].contiguous().numpy() for prob, p in zip(probs, prepared)]

    @torch.inference_mode()
    def refined(self, prepared: Sequence[Prepared]) -> List[Refined]:
        """Each photo's probabilities refined to its full size where the model runs (on a GPU: the host then only
        decodes, composes and encodes), from inputs with a ``guide`` (``carseg.inference.device_refinement``)."""
        probs = self._forward(prepared)
        return refine(self.refinement, [prob[: p.resized_hw[0], : p.resized_hw[1]] for prob, p in zip(probs, prepared)],
                      [p.guide for p in prepared])

    def _forward(self, prepared: Sequence[Prepared]) -> torch.Tensor:
        """N x H' x W' probabilities (float32) on the model's device (called in inference mode)."""
        # torch, not numpy, copies the photos into the batch and the maps out of it: torch does it without the GIL,
        # which the folder command's main process would otherwise hold ~1 ms per photo (benchmarks/README.md)
        height = max(p.image.shape[0] for p in prepared)
        width = max(p.image.shape[1] for p in prepared)
        images = [torch.from_numpy(p.image) for p in prepared]
        if all(image.shape[:2] == (height, width) for image in images):
            host = torch.stack(images)
        else:
            host = torch.zeros((len(images), height, width, 3), dtype=torch.uint8)  # black, as prepare pads
            for row, image in zip(host, images):
                row[: image.shape[0], : image.shape[1]].copy_(image)
        if self.device == "cuda":  # pinned: the copy runs without a staging copy and without blocking this thread
            host = host.pin_memory()
        # NHWC uint8 -> NCHW float: a channels-last view, normalised where the model runs
        batch = host.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float().mul_(self.scale).sub_(self.shift)
        if not self.runtime.channels_last:
            batch = batch.contiguous()
        with torch.autocast(batch.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            return self.model(batch)[:, 0].float()

    def upsample(self, prob: np.ndarray, photo: np.ndarray) -> np.ndarray:
        """A probability map from ``forward`` at the resolution of ``photo`` (``Refinement.upsample``)."""
        return self.refinement.upsample(prob, photo)

    def probabilities(self, prepared: Sequence[Prepared], photos: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Probability maps (float32, each at its photo's own resolution) for one batch; ``photos`` (RGB or grey)
        give the size and guide the edges."""
        return [self.upsample(prob, photo) for prob, photo in zip(self.forward(prepared), photos)]

    def predict_batch(self, images: Sequence[np.ndarray]) -> List[np.ndarray]:
        """Binary masks (uint8 0/255) at each image's resolution."""
        probs = self.probabilities([self.prepare(image) for image in images], images)
        return [self.binarize(prob) for prob in probs]

    def predict(self, image: np.ndarray) -> np.ndarray:
        """Binary mask (uint8 0/255) of one RGB image at its own resolution."""
        return self.predict_batch([image])[0]

    def binarize(self, prob: np.ndarray) -> np.ndarray:
        """Probabilities -> mask (uint8 0/255) at this predictor's threshold."""
        return binarize(prob, self.threshold)

    def remove_background(self, image: np.ndarray, options: CutoutOptions = CutoutOptions()) -> List[np.ndarray]:
        """The car cut out of one RGB image (see ``carseg.inference.cutout.compose``): one picture, or one per car
        with ``options.instances``."""
        return cut_out(self, image, self.forward([self.prepare(image)])[0], options).pictures
