#!/usr/bin/env python
"""Pair images with masks, check them, split by car id and write train/valid CSVs."""
from carseg.commands.prepare_dataset import main

if __name__ == "__main__":
    raise SystemExit(main())
