"""The seal on manifest.json: an HMAC-SHA256, under a key the stack holds, of everything the
manifest says.

A backup folder can be written by more people than the stack (a shared mount, a copied folder,
an unpacked tarball). Without a seal, an edited manifest could steer a root-run restore: an
nginx ``root`` pointing elsewhere, key counts matching a swapped RDB. Sealed, any change to
any field — or a manifest sealed under another key — is one line at validation, and a restore
refuses it before touching anything.

The key is the stack's ``OPSKIT_BACKUP_KEY`` (a secret like the others: in ``.env``, never
printed; ``./dev`` generates one for the sandbox). The seal names the key by an id derived from
it (an HMAC of a fixed text, which reveals nothing of the key), so "sealed with another key" is
told apart from "changed".
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

KEY_VARIABLE = "OPSKIT_BACKUP_KEY"
ALGORITHM = "hmac-sha256"
MIN_KEY_LENGTH = 16
_DOMAIN = b"opskit manifest seal v1\n"


def key_id(key: bytes) -> str:
    return hmac.new(key, b"opskit backup key id", hashlib.sha256).hexdigest()[:16]


def canonical(document: dict[str, Any]) -> bytes:
    """The manifest's fields, minus the seal, as one byte string (sorted keys, no spaces)."""
    body = {name: value for name, value in document.items() if name != "seal"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def seal(document: dict[str, Any], key: bytes) -> dict[str, str]:
    mac = hmac.new(key, _DOMAIN + canonical(document), hashlib.sha256).hexdigest()
    return {"alg": ALGORITHM, "key_id": key_id(key), "mac": mac}


def problem(document: dict[str, Any], key: bytes | None) -> str | None:
    """Why ``document`` (manifest.json as read) is not sealed by ``key``; None when it is."""
    found = document.get("seal")
    if not isinstance(found, dict) or not found.get("mac"):
        return (
            "not sealed (written before opskit sealed its backups, or by something else): "
            "check it, then vouch for it with inv backup.seal ID"
        )
    if key is None:
        return f"sealed, but the stack has no {KEY_VARIABLE} to check the seal with"
    if found.get("alg") != ALGORITHM:
        return f"sealed with {found.get('alg')!r}, which opskit does not know"
    if found.get("key_id") != key_id(key):
        return (
            f"sealed with another key than this stack's {KEY_VARIABLE} (key id "
            f"{str(found.get('key_id'))[:16]}, the stack's is {key_id(key)})"
        )
    expected = seal(document, key)["mac"]
    if not hmac.compare_digest(expected, str(found.get("mac"))):
        return "changed after it was sealed: its seal does not match its content"
    return None


__all__ = ["KEY_VARIABLE", "canonical", "key_id", "problem", "seal"]
