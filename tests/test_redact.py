"""Secret redaction: values found by name, longest first, short values left alone."""

from opskit.config import load_config
from opskit.redact import Redactor


def test_secret_values_are_found_by_name_and_role_option(write_stack):
    path = write_stack(
        """
        x-opskit:
          runtime: process
          alerts: {notify: [{apprise: "slack://T1/B2/secret-slack-token"}]}
        services:
          redis:
            image: redis
            environment: {REDIS_PASSWORD: "${REDIS_PASSWORD}", PORT: "6379"}
            x-opskit: {password: "${REDIS_PASSWORD}"}
          app:
            image: x
            environment: {ANTHROPIC_API_KEY: sk-ant-xyz-123, MODE: production}
            x-opskit: {process: {command: [run]}}
        """
    )
    config = load_config(path, environ={"REDIS_PASSWORD": "pw-abcdef", "WEBHOOK_URL": "http://h/x"})
    values = config.secret_values()
    assert {"pw-abcdef", "sk-ant-xyz-123", "http://h/x"} <= set(values)
    assert "T1/B2/secret-slack-token" in values  # a notifier URL, with and without its scheme
    assert "production" not in values and "6379" not in values


def test_redactor_masks_longest_first_and_ignores_short_values():
    redact = Redactor(["abcd", "abcdefgh", "no"])
    assert redact("x abcdefgh y abcd z no") == "x *** y *** z no"
    assert Redactor([])("unchanged") == "unchanged"
