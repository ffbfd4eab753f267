"""``python -m cleanplate.train CONFIG``: an entry script, the same as ``cleanplate train CONFIG``.

Not library code: the training loop itself never calls the CLI (see the import contracts).
"""

import sys

from cleanplate.cli.app import main

main(["train", *sys.argv[1:]])
