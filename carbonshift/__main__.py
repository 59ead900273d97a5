"""`python -m carbonshift`: the `carbonshift` command."""

import sys

from carbonshift.launch import main

if __name__ == "__main__":
    sys.exit(main())
