"""A stand-in for Kong Gateway 3.x in DB-less mode with the aws-masker plugin (sandbox only).

See sandbox/kong/README.md for what it does and does not do. The real Kong is what operators
run; this exists so opskit's kong role and the masking checks can be tested over real sockets.
"""
