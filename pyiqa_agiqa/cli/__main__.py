"""``python -m pyiqa_agiqa.cli``: the same as ``pyiqa-agiqa``."""

import sys

from . import main

sys.exit(main())
