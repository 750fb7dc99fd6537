"""Backups as files: the RDB check, zstd streams, the manifest, the backups folder, retention.

A library below the roles and operations: roles write their artifacts through
:class:`~opskit.backup.artifacts.ArtifactWriter` and read them back through
:class:`~opskit.backup.artifacts.ArtifactReader`; :mod:`opskit.ops.backup` walks the stack.
"""
