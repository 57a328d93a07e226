#!/usr/bin/env python
"""Score a traced model (default: the built-in one) on labelled photos: python bin/evaluate.py [MODEL] --images DIR --masks DIR | --pairs CSV (see --help)."""
from carseg.commands.evaluate import main

if __name__ == "__main__":
    raise SystemExit(main())
