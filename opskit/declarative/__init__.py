"""Kong's DB-less declarative configuration as files: read, checked, compared, edited, kept.

A DB-less Kong answers every entity write (``PATCH /plugins/{id}``) with 405; the only way to
change it is a whole declarative config through ``POST /config`` (kong-real-behaviour rows 5–11).
This package is what opskit needs around that, with no I/O to Kong itself:

- :mod:`.schema` — the entity types Kong 3.x knows and the aws-masker plugin's real fields.
- :mod:`.document` — parse, validate (every problem named by its path), normalise for a diff
  that ids, timestamps and defaults do not drown, and edit a plugin's settings in a copy.
- :mod:`.history` — every applied config, byte for byte, with its md5 (Kong's
  ``configuration_hash`` of those bytes), time and source, for an exact rollback.
"""
