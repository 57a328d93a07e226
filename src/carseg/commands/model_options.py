"""The options every inference command shares (``car_segmentation.py``, ``evaluate.py``, ``catalyst-dl serve``):
which traced model, and how to run it."""
import argparse
import sys
from typing import TYPE_CHECKING, Any, Dict

from carseg.errors import CarsegError

BUILTIN_NAMES = ("general", "studio")  # carseg.inference.backends.BUILTIN_MODELS (not imported here: see below)

if TYPE_CHECKING:
    from carseg.inference.predictor import Predictor


class _OldMaxSize(argparse.Action):
    """``--image-size S``, the old name of ``--max-size S`` (``catalyst-dl trace --image-size H W`` is another
    thing), still read for one release with a one-line note."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"{parser.prog}: note: --image-size S is now --max-size S; the old name goes in the next release",
              file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """MODEL (optional) and --threshold, --max-size, --tta, --refine, --backend, --device, --precision. The choices are spelt
    out (the Predictor checks them again) so that building ``catalyst-dl``'s parser does not import the Predictor."""
    models = ", ".join(BUILTIN_NAMES)
    parser.add_argument("model", nargs="?", metavar="MODEL",
                        help=f"a built-in model ({models}) or a traced file from catalyst-dl trace (default: general, "
                             "cars in any photo; studio: studio turntable photos)")
    parser.add_argument("--model", dest="model_option", metavar="MODEL", help=f"the same as MODEL: {models} or a path")
    parser.add_argument("--threshold", type=float, metavar="T", help="probability threshold (default: the model's, 0.5)")
    parser.add_argument("--max-size", type=int, metavar="S",
                        help="the photo's longest side at the network's input, in pixels (default: the model's training size)")
    parser.add_argument("--image-size", type=int, dest="max_size", action=_OldMaxSize, help=argparse.SUPPRESS)
    parser.add_argument("--tta", choices=("none", "hflip", "d4"), default="none", help="test-time augmentation")
    parser.add_argument("--refine", choices=("guided", "none"), default="guided",
                        help="full-resolution edges: guided (follow the photo's edges; default) or none (bilinear)")
    parser.add_argument("--backend", default="auto", metavar="NAME",  # checked by the Predictor: one list of backends
                        help="model runtime: torchscript, onnx, or auto (default: onnx for a .onnx file, else torchscript)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run the model")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="the forward pass's number format: auto (default) is bf16 where the CPU (AVX-512 BF16, AMX) "
                             "or GPU runs it natively, else fp32; same masks within rounding")


REFINE_ON = ("auto", "device", "workers")  # carseg.inference.device_refinement.REFINE_ON (not imported: see above)


def add_refine_on(parser: argparse.ArgumentParser, workers: str) -> None:
    """--refine-on, for the commands that finish photos beside the model (``workers``: where else the work runs)."""
    parser.add_argument("--refine-on", choices=REFINE_ON, default="auto",
                        help="where the full-resolution mask work runs (upsampling, --refine's edges, threshold): on "
                             f"the model's device, or {workers}; auto (default): the device if it is a GPU")


def load_predictor(args: argparse.Namespace, announce: bool = True) -> "Predictor":
    """The Predictor the options name, or one clear error line for a bad value; with ``announce``, one line on
    stderr says the precision chosen and why."""
    from carseg.inference.predictor import Predictor  # noqa: F811 - here, not at import: see add_model_options

    if args.model is not None and args.model_option is not None:
        raise CarsegError(f"MODEL {args.model} and --model {args.model_option}: give the model once")
    args.model = args.model if args.model is not None else args.model_option
    if args.threshold is not None and not 0 <= args.threshold <= 1:
        raise CarsegError(f"--threshold {args.threshold}: must be in [0, 1]")
    if args.max_size is not None and args.max_size < 1:
        raise CarsegError(f"--max-size {args.max_size}: must be at least 1")
    predictor = Predictor(**predictor_kwargs(args))
    if announce:
        print(f"{predictor.metadata.model} on {predictor.device}, precision {predictor.precision} "
              f"({predictor.precision_reason})", file=sys.stderr)
    return predictor


def predictor_kwargs(args: argparse.Namespace) -> Dict[str, Any]:
    """The Predictor's keyword arguments the options give (also what a Ray actor builds its own from)."""
    return {"model": args.model, "device": args.device, "tta": args.tta, "threshold": args.threshold,
            "max_size": args.max_size, "backend": args.backend, "refine": args.refine, "precision": args.precision}
