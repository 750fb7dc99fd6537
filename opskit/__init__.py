"""opskit: operate the Kong AWS Masker stack (redis, kong, nginx, backend) from Python.

Library entry points::

    from opskit.stack import load_stack
    from opskit.ops import lifecycle

    stack = load_stack("sandbox/stack.yml")
    result = lifecycle.start(stack)

The invoke tasks in :mod:`opskit.tasks` are thin wrappers around these calls.
"""

__version__ = "0.1.0"
