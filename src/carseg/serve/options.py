"""The query parameters of ``POST /api/remove``: a pydantic model made from the cut-out options' schema
(``carseg.inference.options.OPTIONS``, the folder command's flags under their field names) and two of the service's
own, ``threshold`` and ``mask``. A background picture comes as an upload (multipart field ``background``), never as
a path on the server.
"""
from typing import Any, Dict, List, Literal, Optional, Tuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, create_model, field_validator, model_validator

from carseg.errors import CarsegError, one_line
from carseg.inference.options import OPTIONS, CutoutOptions, Option, check_format, cutout_options, spell

QUERY: Tuple[Option, ...] = OPTIONS + (
    Option("threshold", float, None, "probability threshold (default: the model's)", bounds=(0.0, 1.0)),
    Option("mask", bool, False, "send the mask (grey PNG, 0/255) instead of the cut-out"),
)
BY_NAME = {option.name: option for option in QUERY}


def _field(option: Option) -> Tuple[Any, Any]:
    """The pydantic type and ``Field`` of one option: its choices as a ``Literal``, its bounds as ``ge``/``le``."""
    kind = Literal[option.choices] if option.choices else option.kind
    low, high = option.bounds or (None, None)
    return (kind if option.default is not None else Optional[kind],
            Field(option.default, ge=low, le=high, description=option.help))


def query_value(name: str, text: Optional[str]) -> Any:
    """The option ``name``'s value parsed from ``text`` by the service's parser; a bad one is a ``ValueError`` with
    the parser's message, without the command line's ``--name TEXT: ``."""
    try:
        return BY_NAME[name].value(text, query=True)
    except CarsegError as exc:
        raise ValueError(one_line(exc).removeprefix(f"{spell(name, text)}: ")) from None


def _parsed(cls, text: Optional[str], info: ValidationInfo) -> Optional[str]:
    """Run the option's parser for its check."""
    query_value(info.field_name, text)
    return text


class _Query(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _across_options(self) -> "_Query":
        try:
            options = self.cutout()
            if not self.mask:
                check_format(self.format, options.background, query=True)
        except CarsegError as exc:
            raise ValueError(str(exc)) from None
        return self

    def cutout(self, picture: Optional[np.ndarray] = None) -> CutoutOptions:
        """These options as ``compose`` takes them; ``picture``: an uploaded background (RGB) instead of the colour."""
        return cutout_options(self.model_dump(), query=True, picture=picture)


RemoveOptions = create_model(
    "RemoveOptions", __base__=_Query, __doc__="What to send back; an unknown parameter or value is answered with 422 "
    "and what is allowed.", __validators__={"_parsed": field_validator(
        *(option.name for option in QUERY if option.parse is not None))(_parsed)},
    **{option.name: _field(option) for option in QUERY})


def allowed_values() -> Dict[str, List[str]]:
    """The values each option with a fixed set of them allows (for 422 answers)."""
    return {option.name: list(option.choices) for option in QUERY if option.choices}
