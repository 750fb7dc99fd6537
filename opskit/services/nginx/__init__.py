"""nginx: the role (rendered config, ``nginx -t``, HUP proven by new workers), its backup
and restore (the configuration tree ``nginx -T`` lists), and the upstream editor graceful
restarts of the service it fronts use."""
