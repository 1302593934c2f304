"""Run the cnnrs benchmark suite (same as ``cnnrs bench``); see benches/README.md."""

import sys

from cnnrs.bench.suite import main

if __name__ == "__main__":
    sys.exit(main())
