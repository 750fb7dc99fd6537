"""What recovery remembers between runs: restart budgets, confirmations, operator intent, and
how the watcher learns of a dead unit at once. :mod:`opskit.ops.recover` walks them."""
