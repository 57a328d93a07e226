"""carseg: car segmentation and batch background removal on Catalyst's Config API.

Importing the package loads nothing heavy; ``carseg.registry.registry()`` registers carseg's models, losses,
engines and the Experiment (and Catalyst's runners, callbacks and loggers) in ``catalyst.registry.REGISTRY``.
"""
