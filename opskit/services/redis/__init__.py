"""Redis: the role (start with its config on stdin, SHUTDOWN, probes and health), its backup
and restore (the RDB, streamed and checked), and its metrics. Nothing is imported here, so a
command that only lists the role pays for none of it."""
