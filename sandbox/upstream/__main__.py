"""``python -m sandbox.upstream``: serve the Claude API stand-in on $HOST:$PORT."""

import os

import uvicorn

if __name__ == "__main__":
    uvicorn.run(
        "sandbox.upstream:app",
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "8787")),
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
    )
