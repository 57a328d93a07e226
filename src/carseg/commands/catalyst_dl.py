"""The ``catalyst-dl`` command: ``run`` trains from YAML configs, ``trace`` exports TorchScript, ``plot`` draws curves, ``tune`` searches hyperparameters, ``serve`` removes backgrounds over HTTP."""
import argparse
import importlib
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Set, Tuple

from carseg.commands import serve
from carseg.errors import CarsegError, one_line
from carseg.interrupts import exit_cleanly, interrupted


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


def _load(args: argparse.Namespace) -> Tuple[Dict[str, Any], str]:
    """Merged, overridden and validated config, and a name for it in messages."""
    from carseg import config as cfg

    if args.expdir:
        _import_expdir(args.expdir)
    config = cfg.load_configs(args.configs, args.sets)
    cfg.apply_overrides(config, logdir=args.logdir, seed=args.seed, check=args.check or None, verbose=args.verbose or None)
    source = " + ".join(str(p) for p in args.configs)
    cfg.validate(config, source)
    return config, source


@contextmanager
def _building(source: str) -> Iterator[None]:
    """hydra-slayer wraps factory errors: report the factory and the root cause in one line."""
    try:
        yield
    except RuntimeError as exc:
        cause = _root_cause(exc)
        if isinstance(cause, CarsegError):
            raise cause from None
        raise CarsegError(f"{source}: {str(exc).split(':')[0]}: {type(cause).__name__}: {cause}") from exc


def run(args: argparse.Namespace) -> None:
    """Merge, validate and run the configs through Catalyst's config runner."""
    from catalyst.contrib.scripts.run import run_from_params
    from catalyst.utils.misc import set_global_seed

    from carseg.compat.hydra import build_with_vars
    from carseg.config import catalyst_params, save_config, train_calls
    from carseg.data.loader import release_workers
    from carseg.training.curves import plot_curves
    from carseg.training.resume import apply_resume

    config, source = _load(args)
    if args.resume is not None:
        apply_resume(config, args.resume, logdir_given=args.logdir is not None)
    logdirs = {entry["logdir"] for entry in train_calls(config) if entry.get("logdir")}
    for logdir in logdirs:
        save_config(config, Path(logdir), args.configs)
    # The model's first weights are drawn as the config is built, before Catalyst seeds the run: seeded here too,
    # so one seed gives one run (Catalyst's default seed, 42, when the config names none)
    set_global_seed(next((call["seed"] for call in train_calls(config) if call.get("seed") is not None), 42))
    with _building(source):
        params = build_with_vars(catalyst_params(config))  # this run's _var_ objects only, not an earlier run's
    try:
        run_from_params(params)
    except KeyboardInterrupt as stop:
        raise interrupted(stop, _resume_hint(logdirs)) from None
    finally:  # the workers end with the run, not at the interpreter's exit (which a GPU run never reached)
        release_workers(params["runner"])
    for logdir in logdirs:
        try:
            print(f"training curves -> {plot_curves(Path(logdir))}")
        except CarsegError as exc:  # a finished training run must not fail on its plot
            print(f"catalyst-dl run: warning: no curves: {one_line(exc)}", file=sys.stderr)


def _resume_hint(logdirs: Set[str]) -> str:
    """What a stopped training run left to continue from."""
    from carseg.training.resume import STATE_FILE

    states = [Path(logdir) / "checkpoints" / STATE_FILE for logdir in sorted(logdirs)]
    if not states:
        return ""
    if all(state.is_file() for state in states):
        return f"{', '.join(map(str, states))} holds the last finished epoch; rerun with --resume to continue"
    return "no epoch finished, nothing to resume"


def tune(args: argparse.Namespace) -> None:
    """Optuna search over the values the configs mark ``_var_: trial.suggest_*``."""
    from carseg.config import train_calls
    from carseg.training.tuning import tune as run_study

    config, source = _load(args)
    logdir = Path(args.logdir or next((e["logdir"] for e in train_calls(config) if e.get("logdir")), "./logs/tune"))
    with _building(source):
        best = run_study(config, logdir, args.n_trials, args.timeout, sources=args.configs)
    print(f"best trial {best['trial']}: {best['value']:.4f} with {best['params']} -> {logdir / 'tune' / 'best.yml'}")


def plot(args: argparse.Namespace) -> None:
    """Draw loss, Dice and IoU per loader per epoch from LOGDIR's CSV logs into LOGDIR/curves.png."""
    from carseg.training.curves import plot_curves

    print(plot_curves(args.logdir))


def trace(args: argparse.Namespace) -> None:
    """Trace the best (or given) checkpoint of LOGDIR into a self-describing TorchScript file."""
    from carseg.export.trace import trace_logdir

    trace_logdir(args.logdir, checkpoint=args.checkpoint, image_size=args.image_size, device=args.device, out=args.out,
                 onnx=args.onnx)


def _add_config_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``run`` and ``tune``."""
    parser.add_argument("--config", "--configs", "-C", dest="configs", nargs="+", type=Path, required=True, metavar="CONFIG")
    parser.add_argument("--logdir", type=str, help="override the logdir of every train call")
    parser.add_argument("--expdir", type=Path, help="a Python package to import first (its registry additions)")
    parser.add_argument("--check", action="store_true", help="run a few batches only, to check the setup")
    parser.add_argument("--seed", type=int, help="override the random seed")
    parser.add_argument("--verbose", action="store_true", help="show a progress bar")
    parser.add_argument("--set", dest="sets", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override a config value: dotted KEY (integers index lists), YAML VALUE; repeatable")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="catalyst-dl", description="carseg: train car segmentation from YAML and export it.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run_parser = commands.add_parser("run", help="train from one or more YAML configs (later ones override earlier)")
    _add_config_options(run_parser)
    run_parser.add_argument("--resume", nargs="?", const=True, type=Path, metavar="LOGDIR|STATE",
                            help="continue a stopped run from its last epoch (model, optimizer, scheduler, epoch count): "
                                 "from the config's logdir, or the given logdir or training_state.pth")
    run_parser.set_defaults(func=run)

    tune_parser = commands.add_parser("tune", help="Optuna search over config values marked '_var_: trial.suggest_*'")
    _add_config_options(tune_parser)
    tune_parser.add_argument("--n-trials", type=int, default=10, help="number of trainings (default 10)")
    tune_parser.add_argument("--timeout", type=float, help="stop starting new trials after this many seconds")
    tune_parser.set_defaults(func=tune)

    trace_parser = commands.add_parser("trace", help="turn a logdir's checkpoint into a TorchScript file for inference")
    trace_parser.add_argument("logdir", type=Path)
    trace_parser.add_argument("--checkpoint", default="best", help="best, last, or a checkpoint path (default: best)")
    trace_parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), help="tracing input size (default: the training size)")
    trace_parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    trace_parser.add_argument("--out", type=Path, help="output file (default: LOGDIR/trace/traced-best-forward.pth)")
    trace_parser.add_argument("--onnx", action="store_true", help="also export ONNX beside it (same name, .onnx)")
    trace_parser.set_defaults(func=trace)

    plot_parser = commands.add_parser("plot", help="draw training curves from LOGDIR's CSV logs into LOGDIR/curves.png")
    plot_parser.add_argument("logdir", type=Path)
    plot_parser.set_defaults(func=plot)

    serve.add_parser(commands)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":  # uvicorn handles the service's signals
        return _dispatch(args)
    return exit_cleanly(f"catalyst-dl {args.command}", lambda: _dispatch(args))


def _dispatch(args: argparse.Namespace) -> int:
    try:
        args.func(args)
    except CarsegError as exc:
        print(f"catalyst-dl {args.command}: error: {one_line(exc)}", file=sys.stderr)
        return 1
    return 0
