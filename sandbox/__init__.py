"""The sandbox stack: the Kong AWS Masker topology runnable on one machine, no Docker, no key.

Real redis-server and nginx; small starlette stand-ins for the Claude Messages API
(``sandbox.upstream``) and the Node backend (``sandbox.backend``). See sandbox/README.md.
"""
