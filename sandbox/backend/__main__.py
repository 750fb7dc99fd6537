"""``python -m sandbox.backend``: serve the backend stand-in on $HOST:$PORT."""

import os

import uvicorn

from sandbox.backend import create_app

if __name__ == "__main__":
    uvicorn.run(
        create_app(),
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ.get("PORT", "3000")),
        log_level=os.environ.get("LOG_LEVEL", "info").lower(),
    )
