"""The ``catalyst-dl`` command: ``run`` trains from YAML configs, ``trace`` exports TorchScript, ``plot`` draws curves."""
import argparse
import importlib
import sys
from pathlib import Path
from typing import List, Optional

from carseg.errors import CarsegError, one_line


def _import_expdir(expdir: Path) -> None:
    """Import a user package (as Catalyst 20's ``--expdir``) so its registry additions are usable."""
    expdir = Path(expdir).resolve()
    if not (expdir / "__init__.py").is_file():
        raise CarsegError(f"{expdir}: --expdir must be a Python package folder (with __init__.py)")
    sys.path.insert(0, str(expdir.parent))
    importlib.import_module(expdir.name)


def _root_cause(exc: BaseException) -> BaseException:
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return exc


def run(args: argparse.Namespace) -> None:
    """Merge, validate and run the configs through Catalyst's config runner."""
    from catalyst.contrib.scripts.run import run_from_params
    from catalyst.registry import REGISTRY

    import carseg  # noqa: F401 - registers carseg's names
    from carseg import config as cfg

    if args.expdir:
        _import_expdir(args.expdir)
    config = cfg.apply_sets(cfg.load_configs(args.configs), args.sets)
    cfg.apply_overrides(config, logdir=args.logdir, seed=args.seed, check=args.check or None, verbose=args.verbose or None)
    source = " + ".join(str(p) for p in args.configs)
    cfg.validate(config, source)
    logdirs = {entry["logdir"] for entry in cfg.train_calls(config) if entry.get("logdir")}
    for logdir in logdirs:
        cfg.save_config(config, Path(logdir), args.configs)
    try:
        params = REGISTRY.get_from_params(**config)
    except RuntimeError as exc:  # hydra-slayer wraps factory errors: report the factory and the cause
        cause = _root_cause(exc)
        if isinstance(cause, CarsegError):
            raise cause from None
        raise CarsegError(f"{source}: {str(exc).split(':')[0]}: {type(cause).__name__}: {cause}") from exc
    run_from_params(params)
    from carseg.curves import plot_curves

    for logdir in logdirs:
        try:
            print(f"training curves -> {plot_curves(Path(logdir))}")
        except CarsegError as exc:  # a finished training run must not fail on its plot
            print(f"catalyst-dl run: warning: no curves: {one_line(exc)}", file=sys.stderr)


def plot(args: argparse.Namespace) -> None:
    """Draw loss, Dice and IoU per loader per epoch from LOGDIR's CSV logs into LOGDIR/curves.png."""
    from carseg.curves import plot_curves

    print(plot_curves(args.logdir))


def trace(args: argparse.Namespace) -> None:
    """Trace the best (or given) checkpoint of LOGDIR into a self-describing TorchScript file."""
    from carseg.tracing import trace_logdir

    trace_logdir(args.logdir, checkpoint=args.checkpoint, image_size=args.image_size, device=args.device, out=args.out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalyst-dl", description="carseg: train car segmentation from YAML and export it.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser("run", help="train from one or more YAML configs (later ones override earlier)")
    run_parser.add_argument("--config", "--configs", "-C", dest="configs", nargs="+", type=Path, required=True, metavar="CONFIG")
    run_parser.add_argument("--logdir", type=str, help="override the logdir of every train call")
    run_parser.add_argument("--expdir", type=Path, help="a Python package to import first (its registry additions)")
    run_parser.add_argument("--check", action="store_true", help="run a few batches only, to check the setup")
    run_parser.add_argument("--seed", type=int, help="override the random seed")
    run_parser.add_argument("--verbose", action="store_true", help="show a progress bar")
    run_parser.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                            help="override a config value: dotted KEY (integers index lists), YAML VALUE; repeatable")
    run_parser.set_defaults(func=run)

    trace_parser = commands.add_parser("trace", help="turn a logdir's checkpoint into a TorchScript file for inference")
    trace_parser.add_argument("logdir", type=Path)
    trace_parser.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path (default: best)")
    trace_parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="tracing input size (default: the training size)")
    trace_parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    trace_parser.add_argument("--out", type=Path, help="output file (default: LOGDIR/trace/traced-best-forward.pth)")
    trace_parser.set_defaults(func=trace)

    plot_parser = commands.add_parser("plot", help="draw training curves from LOGDIR's CSV logs into LOGDIR/curves.png")
    plot_parser.add_argument("logdir", type=Path)
    plot_parser.set_defaults(func=plot)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except CarsegError as exc:
        print(f"catalyst-dl {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    return 0
