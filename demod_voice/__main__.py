"""``python -m demod_voice``."""

import sys

from demod_voice.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
