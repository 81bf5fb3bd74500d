"""`python -m seqlab ...`: the `seqlab` command (the same entry point as the console script).

    $ python -m seqlab version
    $ torchrun --nproc_per_node 2 -m seqlab charlm train --preset quick
"""

import sys

from seqlab.cli import main

if __name__ == "__main__":
    sys.exit(main())
