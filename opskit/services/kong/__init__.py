"""Kong: the role (DB-less declarative config, admin and status listeners, the aws-masker
plugin), its Admin API client (``admin``), its backup and restore (``backup``), and the
declarative file it loads at start (``file``)."""
