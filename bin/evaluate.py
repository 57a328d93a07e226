#!/usr/bin/env python
"""Score a traced model (default: the built-in one) on labelled photos: python bin/evaluate.py [MODEL] --images DIR --masks DIR | --pairs CSV (see --help)."""
import sys

try:
    from carseg.commands.evaluate import main
except KeyboardInterrupt:  # Ctrl-C while the libraries load: nothing has started
    print("evaluate.py: interrupted", file=sys.stderr)
    raise SystemExit(130) from None

if __name__ == "__main__":
    raise SystemExit(main())
