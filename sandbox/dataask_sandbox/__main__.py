from __future__ import annotations

import sys

from dataask_sandbox.server import main

sys.exit(main())
