"""``python -m rgcds``: the same as the ``rgcds`` command."""

import sys

from rgcds.cli import main

sys.exit(main())
