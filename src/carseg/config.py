"""YAML configs: merge overlays, apply command-line overrides, validate names and keys, save a copy."""
import difflib
import inspect
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml
from catalyst.registry import REGISTRY

from carseg.errors import CarsegError

MERGED_CONFIG = "_config.yml"  # the merged config inside LOGDIR/configs/
BUILD_ORDER = {name: rank for rank, name in enumerate(
    ("experiment", "model", "criterion", "optimizer", "scheduler", "engine", "runner", "run"))}
META_KEYS = {"_target_", "_var_", "_mode_", "_meta_factory_", "_call_"}


def merge(base: Any, overlay: Any) -> Any:
    """Deep-merge ``overlay`` into ``base``: mappings key by key, and lists of the same length entry by
    entry where each pair calls the same method (``run:``, so an overlay can change ``num_epochs``) or
    builds the same ``_target_`` (``callbacks:``, so an overlay can change one callback's setting)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        merged = dict(base)
        for key, value in overlay.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(overlay, list) and len(base) == len(overlay) and all(
        isinstance(b, dict) and isinstance(o, dict) and any(b.get(k) == o.get(k) is not None for k in ("_call_", "_target_"))
        for b, o in zip(base, overlay)
    ):
        return [merge(b, o) for b, o in zip(base, overlay)]
    return overlay


def load_configs(paths: Sequence[Path]) -> Dict[str, Any]:
    """Merge YAML files left to right (later files override keys of earlier ones), sections in build order."""
    merged: Dict[str, Any] = {}
    for path in paths:
        merged = merge(merged, _load_with_bases(Path(path), ()))
    # Sections are built top to bottom and a `_var_` names only what is built already (the optimizer needs the
    # model), so the known sections go in dependency order whatever order the files and their bases gave.
    return dict(sorted(merged.items(), key=lambda item: BUILD_ORDER.get(item[0], BUILD_ORDER["engine"] - 0.5)))


def _load_with_bases(path: Path, chain: Tuple[Path, ...]) -> Dict[str, Any]:
    """One YAML file merged over its ``_base_:`` files (a path or a list, relative to it; as mmsegmentation)."""
    if not path.is_file():
        raise CarsegError(f"{path}: config file not found" + (f" (a _base_ of {chain[-1]})" if chain else ""))
    if path.resolve() in chain:
        raise CarsegError(f"{path}: _base_ files include each other ({' -> '.join(p.name for p in chain)}); break the cycle")
    try:
        part = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise CarsegError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from exc
    if not isinstance(part, dict):
        raise CarsegError(f"{path}: a config must be a mapping of sections (runner:, run:, ...)")
    bases = part.pop("_base_", [])
    merged: Dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged = merge(merged, _load_with_bases(path.parent / base, (*chain, path.resolve())))
    return merge(merged, part)


def _parse_set(item: str) -> Tuple[List[str], Any]:
    key, sep, text = item.partition("=")
    path = key.strip().split(".")
    if not sep or not all(path):
        raise CarsegError(f"--set {item}: expected KEY=VALUE with a dotted KEY, e.g. --set experiment.valid_fold=2")
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CarsegError(f"--set {key}: value {text!r} is not valid YAML ({str(exc).splitlines()[0]}); quote it") from exc
    return path, value


def apply_sets(config: Dict[str, Any], items: Iterable[str]) -> Dict[str, Any]:
    """Apply ``KEY=VALUE`` overrides (``catalyst-dl run --set``) to the merged config, in place.

    KEY is a dotted path (``experiment.valid_fold``, ``run.0.num_epochs``: integers index lists); VALUE is
    parsed as YAML (``5``, ``0.5``, ``null``, ``[64, 96]``, ``{p: 0.5}``). Every step but the last must
    exist; the last may add a new key to a mapping, but must be an existing index in a list.
    """
    for item in items or ():
        path, value = _parse_set(item)
        key = ".".join(path)
        node: Any = config
        for depth, part in enumerate(path):
            where = ".".join(path[:depth]) or "the config"
            last = depth == len(path) - 1
            if isinstance(node, dict):
                if last:
                    node[part] = value
                elif part in node:
                    node = node[part]
                else:
                    raise CarsegError(f"--set {key}: {where} has no key '{part}'{_suggest(part, map(str, node))}")
            elif isinstance(node, list):
                try:
                    index = int(part)
                except ValueError:
                    index = None
                if index is None or not -len(node) <= index < len(node):
                    valid = f"0..{len(node) - 1}" if node else "none, it is empty"
                    raise CarsegError(f"--set {key}: {where} is a list of {len(node)}; '{part}' is not an index in it (valid: {valid})")
                if last:
                    node[index] = value
                else:
                    node = node[index]
            else:
                raise CarsegError(f"--set {key}: {where} is {node!r}, not a mapping or a list, so it has no '{part}'")
    return config


def train_calls(config: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The ``run:`` entries that call ``train``."""
    return [entry for entry in config.get("run", []) if isinstance(entry, dict) and entry.get("_call_") == "train"]


def apply_overrides(config: Dict[str, Any], **overrides: Any) -> Dict[str, Any]:
    """Set ``logdir``/``seed``/``check``/``verbose`` (those not None) on every train call.

    ``check`` also adds carseg's fixed ``CheckRunCallback`` (Catalyst's own would be added otherwise).
    """
    for entry in train_calls(config):
        entry.update({key: value for key, value in overrides.items() if value is not None})
        if entry.get("check"):
            entry["callbacks"] = [*entry.get("callbacks", []), {"_target_": "CheckRunCallback"}]
    return config


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _check_keys(func: Callable, keys: Iterable[str], where: str, source: str, strict: bool) -> None:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return
    if not strict and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    named = [n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL) and n != "self"]
    for key in keys:
        if key not in named:
            raise CarsegError(f"{source}: unknown key '{where}.{key}'{_suggest(key, named)}; allowed: {', '.join(named)}")


def validate(config: Dict[str, Any], source: str) -> None:
    """Fail early, naming the key, on unknown ``_target_`` names, misspelt keys and misspelt sections (a top-level
    section carseg does not know is allowed only when it builds something: ``_target_``)."""
    sections = [*BUILD_ORDER, "study"]  # study: catalyst-dl tune's Optuna settings
    for section, value in config.items():
        if section not in sections and not (isinstance(value, dict) and "_target_" in value):
            raise CarsegError(f"{source}: unknown section '{section}:'{_suggest(section, sections)}; "
                              f"sections: {', '.join(sections)} (or your own, with a _target_)")
    for section in ("runner", "run"):
        if section not in config:
            raise CarsegError(f"{source}: missing section '{section}:'")
    if not isinstance(config["run"], list):
        raise CarsegError(f"{source}: 'run:' must be a list of '_call_:' entries")
    runner = _resolve(config["runner"].get("_target_"), "runner", source)

    def walk(node: Any, where: str) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]")
            return
        if not isinstance(node, dict):
            return
        keys = [k for k in node if k not in META_KEYS]
        if "_target_" in node:
            factory = _resolve(node["_target_"], where, source)
            strict = getattr(factory, "__module__", "").startswith("segmentation_models_pytorch")
            _check_keys(factory, keys, where, source, strict)
        elif "_call_" in node:
            method = getattr(runner, node["_call_"], None)
            if method is None:
                raise CarsegError(f"{source}: {where}._call_: runner has no method '{node['_call_']}'")
            _check_keys(method, keys, where, source, strict=False)
        for key in keys:
            walk(node[key], f"{where}.{key}")

    for key, value in config.items():
        walk(value, key)


def _resolve(name: Optional[str], where: str, source: str) -> Callable:
    if not name:
        raise CarsegError(f"{source}: {where} needs a '_target_:'")
    try:
        return REGISTRY.get(name)
    except LookupError:
        raise CarsegError(
            f"{source}: {where}._target_: unknown name '{name}'{_suggest(name, REGISTRY.all())}; "
            "use a registered name (python -c 'import carseg, catalyst.registry as r; print(sorted(r.REGISTRY.all()))') "
            "or a dotted import path"
        ) from None


def save_config(config: Dict[str, Any], logdir: Path, sources: Sequence[Path]) -> Path:
    """Write the merged config (complete: what ``catalyst-dl trace`` rebuilds from) and the given files as they are
    (their ``_base_`` files stay in configs/)."""
    folder = Path(logdir) / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        (folder / Path(source).name).write_text(Path(source).read_text(encoding="utf-8"), encoding="utf-8")
    target = folder / MERGED_CONFIG
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target
