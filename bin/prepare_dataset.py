#!/usr/bin/env python
"""Pair images with masks, check them, split by car id and write train/valid CSVs."""
from carseg.prepare import main

if __name__ == "__main__":
    raise SystemExit(main())
