"""`python -m ocx.adapters.train ARGS` == `ocx train ARGS`: the entry point for launchers,
e.g. `torchrun --nproc_per_node 8 -m ocx.adapters.train --data d --model m --out o`."""

import sys

from ocx.cli import main

if __name__ == "__main__":
    sys.argv[1:1] = ["train"]
    main()
