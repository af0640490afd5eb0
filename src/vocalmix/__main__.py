"""``python -m vocalmix``: the command line."""

import sys

from vocalmix.frontends.cli import main

if __name__ == "__main__":  # a worker process (live's settle estimate) imports this too
    sys.exit(main())
