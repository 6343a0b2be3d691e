"""${ENV} expansion and redaction of secrets in URLs and log text."""
import logging

import pytest

from alertd.notify.secrets import expand_env, redact, redact_url, url_secrets


def test_expand_env():
    env = {"SLACK_TOKEN": "T0/B1/xyz", "PORT": "25"}
    assert expand_env("slack://${SLACK_TOKEN}/#alerts", env) == "slack://T0/B1/xyz/#alerts"
    assert expand_env("mailto://h:${PORT}", env) == "mailto://h:25"
    assert expand_env("json://h/$PLAIN", env) == "json://h/$PLAIN"  # only ${...} expands


def test_expand_env_unknown_var_names_it_without_leaking():
    with pytest.raises(ValueError, match="MISSING_TOKEN") as info:
        expand_env("json://u:hunter2secret@host/${MISSING_TOKEN}", {})
    assert "hunter2secret" not in str(info.value)


def test_redact():
    assert redact("token abc123 and abc123x", ["abc123"]) == "token *** and ***x"
    assert redact("a/b c", ["a/b", ""]) == "*** c"
    assert redact("url /x%2Fy", ["x/y"]) == "url /***"  # URL-quoted form too


@pytest.mark.parametrize("url,hidden,shown", [
    ("mailto://user:pa55word@smtp.example.com?to=x@y.z", ["pa55word"], ["user", "x@y.z"]),
    ("json://127.0.0.1:8080/hook?token=s3cret&format=text", ["s3cret"], ["8080", "format=text"]),
    ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#alerts",
     ["T1JJ3T3L2", "A1BRTD4JD", "TIiajkdnlazkcOXrIdevi7FQ"], ["#alerts"]),
    ("tgram://123456789:ABCdefGhIJKlmnoPQRsT/4567", ["123456789", "ABCdefGhIJKlmnoPQRsT"], []),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", ["JHMHI8qBe7bk2ZwO5U711o3dV_js"], []),
    ("json://hooks.example.com/services/a8f3K29dLq0Zx7", ["a8f3K29dLq0Zx7"], ["services"]),
])
def test_redact_url(url, hidden, shown):
    out = redact_url(url)
    for h in hidden:
        assert h not in out
        assert h in url_secrets(url) or any(h in s for s in url_secrets(url))
    for s in shown:
        assert s in out
    assert "***" in out


def test_redact_url_plain_urls_unchanged():
    assert redact_url("json://127.0.0.1:8080/alerts") == "json://127.0.0.1:8080/alerts"
    assert redact_url("/etc/alertd/apprise.yml") == "/etc/alertd/apprise.yml"


def test_log_filter_masks_registered_secrets(caplog):
    from alertd.notify.secrets import register_secrets
    register_secrets(["tok-9f8e7d6c5b"])
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("apprise").warning("posting to /hook/%s", "tok-9f8e7d6c5b")
        try:
            raise RuntimeError("bad /hook/tok-9f8e7d6c5b")
        except RuntimeError:
            logging.getLogger("alertd.notify.test").exception("failed")
    assert "tok-9f8e7d6c5b" not in caplog.text
    assert "posting to /hook/***" in caplog.text
