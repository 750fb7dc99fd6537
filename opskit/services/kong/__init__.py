"""Kong: the role (DB-less declarative config, admin and status listeners, the aws-masker
plugin), and the declarative file it loads at start (``file``)."""
