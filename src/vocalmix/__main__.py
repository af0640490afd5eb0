"""``python -m vocalmix``: the command line."""

import sys

from vocalmix.frontends.cli import main

sys.exit(main())
