"""``python -m mpcl.multisubject``: see :mod:`mpcl.multisubject.cli`."""

import sys

from mpcl.multisubject.cli import main

sys.exit(main())
