"""``python -m tools.bench bare-agent|alert-latency``: the bench's helper processes."""

import sys

from tools.bench.helpers import main

sys.exit(main())
