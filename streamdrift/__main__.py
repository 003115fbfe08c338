"""``python -m streamdrift``: the same as the ``streamdrift`` console script."""

import sys

from streamdrift.cli import main

sys.exit(main())
