"""hydra-slayer's object builder with extra variables (``_var_: trial.suggest_float`` in ``catalyst-dl tune``)."""
from typing import Any, Dict

from hydra_slayer import functional as F

from carseg.registry import registry


def build_with_vars(params: Dict[str, Any], **variables: Any) -> Dict[str, Any]:
    """``registry().get_from_params(**params)`` where ``_var_`` may also name ``variables``, and the objects the build
    names with ``_var_`` stay in this build: ``get_from_params`` keeps them in the registry for the rest of the
    process, so a second config built in the same process (``main()`` called twice, tuning trials) failed with
    "``_target_`` and ``_var_`` are exclusive". hydra-slayer 0.5 offers no public way to do either, so this calls its
    private recursive builder with a copy of the registry's private variables, as Catalyst's ``catalyst-tune`` does."""
    names = registry()  # carseg's names too
    built, _ = F._recursive_get_from_params(
        factory_key=names.name_key, get_factory_func=names.get, params=params, shared_params={},
        var_key=names.var_key, attrs_delimiter=names.attrs_delimiter,
        vars_dict={**names._vars_dict, **variables},
    )
    return built
