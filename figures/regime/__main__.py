"""python -m figures.regime: the regime check (figures/regime/check.py)."""
import sys

from .check import main

if __name__ == "__main__":
    sys.exit(main())
