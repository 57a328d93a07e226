#!/usr/bin/env python
"""Score a traced model on labelled photos: python bin/evaluate.py MODEL --images DIR --masks DIR [options] (see --help)."""
from carseg.evaluation import main

if __name__ == "__main__":
    raise SystemExit(main())
