"""``python -m asyncnet`` is the ``asyncnet`` command."""

import sys

from .cli import main

sys.exit(main())
