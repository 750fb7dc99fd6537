"""invoke entry point: `inv --list` shows opskit's tasks (the `opskit` command is the same
collection, usable from anywhere: see opskit/cli.py).

Operators who keep their own tasks.py can import the collection the same way:

    from opskit.tasks import ns
    from opskit.tasks.parsing import install

    install()  # opskit's flag parsing (optional positionals, -s VALUE) for `inv`
"""

from opskit.tasks import ns
from opskit.tasks.parsing import install

install()

__all__ = ["ns"]
