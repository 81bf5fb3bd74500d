"""`python -m seqlab.apps.embeddings ...`: the same as `seqlab embeddings ...`."""

import sys

from seqlab.apps.embeddings.cli import main

sys.exit(main())
