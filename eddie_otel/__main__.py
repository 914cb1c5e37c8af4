"""`python -m eddie_otel`: the same as the `eddie-otel` command."""

import sys

from eddie_otel.cli import main

sys.exit(main())
