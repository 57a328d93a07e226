"""Training curves: loss, Dice and IoU per loader per epoch from Catalyst's CSV logs -> LOGDIR/curves.png."""
import math
from pathlib import Path
from typing import Dict, List, Tuple

from carseg.atomic import atomic_path
from carseg.errors import CarsegError

CSV_FOLDER = "csv_logger"  # where Catalyst's CSVLogger writes <loader>.csv under the logdir
CURVES_FILE = "curves.png"
METRICS = ("loss", "dice", "iou")
TITLES = {"loss": "loss", "dice": "Dice", "iou": "IoU"}

Series = Dict[str, List[float]]  # column -> values, "step" included


def read_metrics_csv(path: Path) -> Series:
    """One loader's epoch metrics from Catalyst's CSV log.

    Catalyst appends to the file and writes a new header line whenever a run reuses the logdir. A part
    that starts again at step 1 (a rerun) replaces what came before; one that starts later (a resumed
    run) continues it. Lines that do not parse (a run killed while writing) are skipped.
    """
    rows: List[Dict[str, float]] = []
    columns: List[str] = []
    first_of_part = False
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.strip().split(",")
        if fields[0] == "step":
            columns, first_of_part = fields, True
            continue
        try:
            row = dict(zip(columns, map(float, fields), strict=True))
        except ValueError:
            continue
        if first_of_part:
            rows, first_of_part = [r for r in rows if r["step"] < row["step"]], False
        rows.append(row)
    rows = [row for row in rows if set(row) == set(columns)]
    return {column: [row[column] for row in rows] for column in columns} if columns else {}


def read_logs(logdir: Path) -> Dict[str, Series]:
    """``{loader: series}`` for every ``LOGDIR/csv_logger/<loader>.csv`` with rows (train first, then valid)."""
    if not Path(logdir).is_dir():
        raise CarsegError(f"{logdir}: logdir not found; pass the logdir of a run (catalyst-dl run --logdir DIR)")
    folder = Path(logdir) / CSV_FOLDER
    paths = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    logs = {path.stem: read_metrics_csv(path) for path in paths if not path.stem.startswith("_")}  # _epoch_: lr only
    logs = {loader: series for loader, series in logs.items() if series.get("step")}
    if not logs:
        raise CarsegError(f"{folder}: no CSV logs with epochs found; train first (catalyst-dl run --config CONFIG) "
                          "or pass the logdir of a run")
    order = {"train": 0, "valid": 1}
    return dict(sorted(logs.items(), key=lambda item: (order.get(item[0], 2), item[0])))


def plot_curves(logdir: Path) -> Path:
    """Draw loss, Dice and IoU per epoch (one panel per metric, one line per loader) into
    ``LOGDIR/curves.png``, written atomically; returns its path.

    Raises :class:`CarsegError` when LOGDIR has no CSV logs (``LOGDIR/csv_logger/<loader>.csv``).
    """
    # A bare Figure on the Agg canvas: no pyplot global state, no display needed, the caller's backend untouched.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    logdir = Path(logdir)
    logs = read_logs(logdir)
    metrics = [metric for metric in METRICS if any(series.get(metric) for series in logs.values())]
    if not metrics:
        raise CarsegError(f"{logdir / CSV_FOLDER}: the CSV logs have none of the columns {', '.join(METRICS)}")

    figure = Figure(figsize=(4.2 * len(metrics), 3.4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(metrics), squeeze=False)[0]
    for ax, metric in zip(axes, metrics):
        for loader, series in logs.items():
            points: List[Tuple[float, float]] = [(step, value) for step, value in zip(series["step"], series.get(metric, []))
                                                 if math.isfinite(value)]
            if not points:
                continue
            steps, values = zip(*points)
            best = min(values) if metric == "loss" else max(values)
            line, = ax.plot(steps, values, marker="o" if len(points) <= 30 else None, markersize=3,
                            label=f"{loader} ({'min' if metric == 'loss' else 'max'} {best:.4f})")
            ax.plot(steps[values.index(best)], best, marker="*", markersize=10, color=line.get_color())
        ax.set_title(TITLES[metric])
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend(fontsize=8)
    figure.suptitle(str(logdir.resolve().name), fontsize=9)

    target = logdir / CURVES_FILE
    try:
        with atomic_path(target) as tmp:
            figure.savefig(tmp, format="png")
    except OSError as exc:
        raise CarsegError(f"{target}: could not write the curves ({exc.strerror or exc})") from exc
    return target
