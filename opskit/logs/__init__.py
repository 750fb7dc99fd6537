"""Service logs as files: line timestamps, merging by time, redacted archives with a manifest.

Nothing here talks to a unit; :mod:`opskit.ops.logs` gathers the lines through the runtime and
hands them to this library.
"""
