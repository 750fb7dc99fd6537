"""invoke entry point: `inv --list` shows opskit's tasks (the `opskit` command is the same
collection, usable from anywhere: see opskit/cli.py).

Operators who keep their own tasks.py can import the collection the same way:

    from opskit.tasks import ns
    from opskit.tasks.parsing import install

    install()  # opskit's flag parsing (optional positionals, -s VALUE) for `inv`
"""

import os
import sys

# invoke turns bytecode writing off before it loads this file (so no tasks.pyc lands beside
# it); opskit's own modules would then be compiled again at every command, ≈ 0.15 s of each.
# They are cached like any installed package's, unless the operator asked for no bytecode.
sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))

from opskit.tasks import ns  # noqa: E402
from opskit.tasks.parsing import install  # noqa: E402

install()

__all__ = ["ns"]
