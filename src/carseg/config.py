"""YAML configs on OmegaConf: ``_base_`` files merged under each config, ``--set`` overrides, ``${...}``
interpolation, validation of names and keys, and a saved copy.

The train call and the lists that matter are named mappings, so an overlay or ``--set`` changes one entry::

    run:
      train:                        # run.train: the call's name (its _call_ when not given)
        num_epochs: 30
        callbacks:
          dice: {_target_: DiceCallback, threshold: 0.5}
          early_stopping: {_target_: EarlyStoppingCallback, patience: 8}   # an overlay may say early_stopping: null
    scheduler:
      T_max: ${run.train.num_epochs}   # values that must agree are written once

Older configs (``run:`` and ``callbacks:`` as lists) are read into this form: calls named by their ``_call_``,
callbacks and loggers by their class (``EarlyStoppingCallback`` -> ``early_stopping``).
"""
import difflib
import inspect
import re
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from carseg.errors import CarsegError

MERGED_CONFIG = "_config.yml"  # the merged config inside LOGDIR/configs/
BUILD_ORDER = {name: rank for rank, name in enumerate(
    ("experiment", "model", "criterion", "optimizer", "scheduler", "engine", "runner", "run"))}
META_KEYS = {"_target_", "_var_", "_mode_", "_meta_factory_", "_call_"}
NAMED_LISTS = ("callbacks", "loggers")  # in a run call: lists written as mappings by name
STUDY_KEYS = ("direction", "seed", "study_name")  # catalyst-dl tune's Optuna settings


def entry_name(target: str) -> str:
    """A callback's or logger's name in its mapping, from its ``_target_``: ``EarlyStoppingCallback`` ->
    ``early_stopping``, ``IOUCallback`` -> ``iou``, ``catalyst.loggers.CSVLogger`` -> ``csv``."""
    base = re.sub(r"(Callback|Logger)$", "", str(target).rsplit(".", 1)[-1]) or str(target)
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", base).lower()


def _by_name(items: list, name: Callable[[Any], str]) -> Dict[str, Any]:
    """A list as a mapping by ``name`` (``name_2``, ``name_3``, ... when it repeats)."""
    named: Dict[str, Any] = {}
    for item in items:
        key, number = name(item), 2
        while key in named:
            key, number = f"{name(item)}_{number}", number + 1
        named[key] = item
    return named


def _named(part: Dict[str, Any]) -> Dict[str, Any]:
    """One file's sections with ``run:`` and each call's callbacks and loggers as named mappings."""
    run = part.get("run")
    if isinstance(run, list):
        run = _by_name(run, lambda call: str(call.get("_call_", "call")) if isinstance(call, dict) else "call")
    if isinstance(run, dict):
        for name, call in run.items():
            if isinstance(call, dict):
                call.setdefault("_call_", name)
                for key in NAMED_LISTS:
                    if isinstance(call.get(key), list):
                        call[key] = _by_name(call[key], lambda item: entry_name(item.get("_target_", "entry"))
                                             if isinstance(item, dict) else "entry")
        part["run"] = run
    return part


def _drop_nulls(config: Dict[str, Any]) -> None:
    """Callbacks and loggers an overlay set to null are left out."""
    for call in config.get("run", {}).values():
        for key in NAMED_LISTS:
            if isinstance(call.get(key), dict):
                call[key] = {name: item for name, item in call[key].items() if item is not None}


def load_configs(paths: Sequence[Path], sets: Iterable[str] = ()) -> Dict[str, Any]:
    """Merge YAML files left to right (later files override keys of earlier ones), apply ``sets`` (``--set``), resolve
    ``${...}``, and return the plain config with its sections in build order."""
    merged = OmegaConf.create({})
    for path in paths:
        merged = OmegaConf.merge(merged, _load_with_bases(Path(path), ()))
    config = apply_sets(OmegaConf.to_container(merged), sets)
    try:
        config = OmegaConf.to_container(OmegaConf.create(config), resolve=True)
    except OmegaConfBaseException as exc:
        source = " + ".join(str(p) for p in paths)
        raise CarsegError(f"{source}: {str(exc).splitlines()[0]} (at {getattr(exc, 'full_key', '?')}); "
                          "a ${...} value must name an existing key, e.g. ${run.train.num_epochs}") from None
    _drop_nulls(config)
    # Sections are built top to bottom and a `_var_` names only what is built already (the optimizer needs the
    # model), so the known sections go in dependency order whatever order the files and their bases gave.
    return dict(sorted(config.items(), key=lambda item: BUILD_ORDER.get(item[0], BUILD_ORDER["engine"] - 0.5)))


def _load_with_bases(path: Path, chain: Tuple[Path, ...]) -> Any:
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
    merged = OmegaConf.create({})
    try:
        for base in [bases] if isinstance(bases, str) else bases:
            merged = OmegaConf.merge(merged, _load_with_bases(path.parent / base, (*chain, path.resolve())))
        return OmegaConf.merge(merged, OmegaConf.create(_named(part)))
    except OmegaConfBaseException as exc:
        raise CarsegError(f"{path}: cannot merge it over its _base_ files ({str(exc).splitlines()[0]}, "
                          f"at {getattr(exc, 'full_key', '?')})") from None


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

    KEY is a dotted path (``experiment.valid_fold``, ``run.train.callbacks.dice.threshold``; integers index
    lists); VALUE is parsed as YAML (``5``, ``0.5``, ``null``, ``[64, 96]``, ``{p: 0.5}``). Every step but the last
    must exist; the last may add a new key to a mapping, but must be an existing index in a list.
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
                elif part.lstrip("-").isdigit() and node and all(isinstance(v, dict) for v in node.values()):
                    raise CarsegError(f"--set {key}: {where} is a mapping by name now, not a list; use "
                                      f"{where}.NAME.{'.'.join(path[depth + 1:])} with NAME one of: {', '.join(node)}")
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
    """The ``run:`` calls of ``train``."""
    return [call for call in config.get("run", {}).values() if isinstance(call, dict) and call.get("_call_") == "train"]


def catalyst_params(config: Dict[str, Any]) -> Dict[str, Any]:
    """The config as Catalyst's config runner takes it: ``run:`` a list of calls (callbacks and loggers stay
    mappings by name, which ``runner.train`` accepts)."""
    return {**config, "run": list(config["run"].values())}


def apply_overrides(config: Dict[str, Any], **overrides: Any) -> Dict[str, Any]:
    """Set ``logdir``/``seed``/``check``/``verbose`` (those not None) on every train call.

    ``check`` also adds carseg's fixed ``CheckRunCallback`` (Catalyst's own would be added otherwise).
    """
    for call in train_calls(config):
        call.update({key: value for key, value in overrides.items() if value is not None})
        if call.get("check"):
            call["callbacks"] = {**call.get("callbacks", {}), "check_run": {"_target_": "CheckRunCallback"}}
    return config


def _suggest(word: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _keywords(function: Callable) -> Optional[Tuple[List[str], bool]]:
    """``function``'s keyword arguments and whether it takes ``**kwargs`` (None when it has no signature)."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return None
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def allowed_keys(factory: Callable) -> Optional[List[str]]:
    """The keys a config may give ``factory``, or None when they cannot be known (a function taking ``**kwargs``).

    A class whose ``__init__`` takes ``**kwargs`` passes them on to the classes it inherits from, so their
    arguments count too, up to one that takes none (or ``object`` / ``torch.nn.Module``, which accept no extra key).
    """
    found = _keywords(factory)
    if found is None or not found[1]:
        return None if found is None else found[0]
    if not inspect.isclass(factory):
        return None
    named = list(found[0])
    for cls in factory.__mro__[1:]:
        init = vars(cls).get("__init__")
        if init is None:
            continue
        if cls is object or init.__qualname__ == "Module.__init__":
            return named
        found = _keywords(init)
        if found is None:
            return None
        named += [name for name in found[0] if name not in named]
        if not found[1]:
            return named
    return named


def _check_keys(factory: Callable, keys: Iterable[str], where: str, source: str) -> None:
    named = allowed_keys(factory)
    for key in keys if named is not None else ():
        if key not in named:
            raise CarsegError(f"{source}: unknown key '{where}.{key}'{_suggest(key, named)}; allowed: {', '.join(named)}")


def validate(config: Dict[str, Any], source: str) -> None:
    """Fail early, naming the key and the allowed ones, on unknown ``_target_`` names, misspelt keys (also those a
    class passes on as ``**kwargs``) and misspelt sections (a top-level section carseg does not know is allowed only
    when it builds something: ``_target_``)."""
    from carseg.registry import registry

    sections = [*BUILD_ORDER, "study"]  # study: catalyst-dl tune's Optuna settings
    for section, value in config.items():
        if section not in sections and not (isinstance(value, dict) and "_target_" in value):
            raise CarsegError(f"{source}: unknown section '{section}:'{_suggest(section, sections)}; "
                              f"sections: {', '.join(sections)} (or your own, with a _target_)")
    for section in ("runner", "run"):
        if section not in config:
            raise CarsegError(f"{source}: missing section '{section}:'")
    if not isinstance(config["run"], dict) or not all(isinstance(call, dict) for call in config["run"].values()):
        raise CarsegError(f"{source}: 'run:' must map names to calls, e.g. run: {{train: {{num_epochs: 10, ...}}}}")
    for key in config.get("study") or {}:
        if key not in STUDY_KEYS:
            raise CarsegError(f"{source}: unknown key 'study.{key}'{_suggest(key, STUDY_KEYS)}; allowed: {', '.join(STUDY_KEYS)}")
    names = registry()
    runner = _resolve(names, config["runner"].get("_target_"), "runner", source)

    def walk(node: Any, where: str) -> None:
        if isinstance(node, list):
            for index, item in enumerate(node):
                walk(item, f"{where}[{index}]")
            return
        if not isinstance(node, dict):
            return
        keys = [k for k in node if k not in META_KEYS]
        if "_target_" in node:
            _check_keys(_resolve(names, node["_target_"], where, source), keys, where, source)
        elif "_call_" in node:
            method = getattr(runner, node["_call_"], None)
            if method is None:
                raise CarsegError(f"{source}: {where}._call_: runner has no method '{node['_call_']}'")
            _check_keys(method, keys, where, source)
        for key in keys:
            walk(node[key], f"{where}.{key}")

    for key, value in config.items():
        walk(value, key)


def _resolve(registry: Any, name: Optional[str], where: str, source: str) -> Callable:
    if not name:
        raise CarsegError(f"{source}: {where} needs a '_target_:'")
    try:
        return registry.get(name)
    except LookupError:
        raise CarsegError(
            f"{source}: {where}._target_: unknown name '{name}'{_suggest(name, registry.all())}; "
            "use a registered name (python -c 'from carseg.registry import registry; print(sorted(registry().all()))') "
            "or a dotted import path"
        ) from None


def save_config(config: Dict[str, Any], logdir: Path, sources: Sequence[Path]) -> Path:
    """Write the merged config (complete and resolved: what ``catalyst-dl trace`` rebuilds from) and the given files
    as they are (their ``_base_`` files stay in configs/)."""
    folder = Path(logdir) / "configs"
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        (folder / Path(source).name).write_text(Path(source).read_text(encoding="utf-8"), encoding="utf-8")
    target = folder / MERGED_CONFIG
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target
