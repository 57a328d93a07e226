"""hydra-slayer's object builder with extra variables (``_var_: trial.suggest_float`` in ``catalyst-dl tune``)."""
from typing import Any, Dict

from catalyst.registry import REGISTRY
from hydra_slayer import functional as F


def build_with_vars(params: Dict[str, Any], **variables: Any) -> Dict[str, Any]:
    """``REGISTRY.get_from_params(**params)`` where ``_var_`` may also name ``variables``. hydra-slayer 0.5 offers no
    public way to add variables, so this calls its private recursive builder with the registry's private variables
    and the extra ones, as Catalyst's own ``catalyst-tune`` does."""
    built, _ = F._recursive_get_from_params(
        factory_key=REGISTRY.name_key, get_factory_func=REGISTRY.get, params=params, shared_params={},
        var_key=REGISTRY.var_key, attrs_delimiter=REGISTRY.attrs_delimiter,
        vars_dict={**REGISTRY._vars_dict, **variables},
    )
    return built
