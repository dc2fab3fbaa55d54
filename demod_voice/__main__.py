"""``python -m demod_voice``."""

import sys

from .cli import main

# Guarded: worker processes are started with "spawn", which re-imports the main module.
if __name__ == "__main__":
    sys.exit(main())
