"""`python -m seqlab.apps.charlm ...`: the same as `seqlab charlm ...`."""

import sys

from seqlab.apps.charlm.cli import main

sys.exit(main())
