"""``python -m sandbox.probe URL``: exit 0 when GET URL answers 2xx — a container HEALTHCHECK
for images that have Python but no curl."""

import sys
import urllib.request

try:
    with urllib.request.urlopen(sys.argv[1], timeout=2) as response:
        sys.exit(0 if 200 <= response.status < 300 else 1)
except Exception as exc:  # any failure is "unhealthy"; say why in the health log
    print(exc)
    sys.exit(1)
