"""`python -m seqlab.apps.sentiment ...`: the `seqlab sentiment` command on its own."""

import sys

from seqlab.apps.sentiment.cli import main

sys.exit(main())
