"""`python -m pullthrough.cli`: the command line."""

import sys

from pullthrough.cli.main import main

sys.exit(main())
