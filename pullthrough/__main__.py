"""`python -m pullthrough`: the command line (see pullthrough.cli)."""

import sys

from pullthrough.cli import main

sys.exit(main())
