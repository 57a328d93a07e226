"""Public sources of real car photos with masks, one module each; ``build.py`` assembles them into the Carvana layout.

Each source module has ``REPO`` (owner/name), ``COMMIT`` (fixed), ``LICENCE`` (one line), ``samples(blobs)``
listing its usable photos, and ``mask(blobs_bytes)`` turning its mask file(s) into a 0/255 car mask.
"""
from dataclasses import dataclass
from typing import Tuple

KINDS = ("studio", "street", "video")
SOURCES_CSV = "sources.csv"  # OUT/sources.csv: each photo's name, source, kind and split (prepare_dataset.py reads it)


@dataclass(frozen=True)
class Sample:
    """One photo of a source: its output name ``<source>.<group>_<view>`` (``car_id`` of the name = the group, so
    a split by car keeps a car or a sequence on one side), the files it comes from, its kind of photo and split."""

    name: str
    image: str
    masks: Tuple[str, ...]
    kind: str
    split: str  # "train" or "valid"
