"""invoke entry point: `inv --list` shows opskit's tasks.

Operators who keep their own tasks.py can import the collection the same way:

    from opskit.tasks import ns
"""

from opskit.tasks import ns

__all__ = ["ns"]
