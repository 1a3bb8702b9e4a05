"""`python -m rlmr.cli ...` is the `rlmr` command (for environments without the console script)."""

import sys

from rlmr.cli import main

sys.exit(main())
