"""The aws-masker plugin's masking events: parsing, redaction, statistics, rate-limited output.

The plugin publishes one JSON object per request with a body on ``aws-masker:events:masking``
(P:E2/event_publisher.lua; shared/reference/kong-real-behaviour.md row 20); the planned batched
form (``event_batch_size``) is a JSON array of them, or ``{"events": [...]}``. Each carries up
to 500 characters of the *original, unmasked* request in ``demo_data.original_text``: nothing
here lets that out unredacted unless the caller asked and the stack is not production.
"""
