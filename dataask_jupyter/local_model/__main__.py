"""``python -m dataask_jupyter.local_model serve|assemble|stop``."""

import sys

from dataask_jupyter.local_model.process import _main

sys.exit(_main())
