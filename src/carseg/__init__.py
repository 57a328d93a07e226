"""carseg: car segmentation and batch background removal on Catalyst's Config API.

Importing the package registers its models, losses, engines and the Experiment (and Catalyst's
runners, callbacks and loggers) in ``catalyst.registry.REGISTRY``, lazily on first look-up.
"""
from catalyst.registry import REGISTRY

from carseg.registry import register

REGISTRY.late_add(register)
