"""``python -m fasttsne``: the command-line tool."""

import sys

from fasttsne.cli import main

sys.exit(main())
