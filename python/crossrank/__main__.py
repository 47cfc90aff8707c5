"""``python -m crossrank``: the ``crossrank`` command line."""

import sys

from crossrank.cli import main

sys.exit(main())
