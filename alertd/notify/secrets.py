"""Secrets in notification URLs: `${ENV}` expansion, and redaction of everything we print or log.

Tokens live in apprise URLs (`slack://T0/B0/XXXX`, `json://host/hook?token=...`, `mailto://u:pw@host`).
They must never reach a log line, an exception message or stdout, so every URL we show goes through
`redact_url`, and every message that might quote one (ours, apprise's, urllib3's) through `redact`.
"""
from __future__ import annotations

import logging
import os
import re
from typing import Iterable, Mapping
from urllib.parse import quote

MASK = "***"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://(.*)$", re.S)
# Query keys whose values are credentials in apprise URLs.
_SECRET_KEY = re.compile(r"(token|key|secret|pass|pwd|auth|sig|hook|cred|session|bearer|access|sid)",
                         re.I)
# Schemes whose host and path segments are tokens (apprise: slack://TokenA/TokenB/TokenC/#chan,
# tgram://bot_token/chat_id, discord://webhook_id/webhook_token, pover://user@token, ...).
TOKEN_SCHEMES = frozenset({
    "slack", "discord", "tgram", "msteams", "pover", "pbul", "gotify", "gotifys", "ntfy", "ntfys",
    "ifttt", "join", "mmost", "mmosts", "rocket", "rockets", "zulip", "twilio", "signal", "signals",
    "matrix", "matrixs", "pushed", "prowl", "spush", "wxteams", "line", "lametric", "opsgenie",
    "pagerduty", "splunk", "victorops", "apprise", "apprises", "ses", "sns", "workflow", "workflows",
})
# A path segment that looks like a generated token: long, and mixes letters with digits.
_TOKENISH = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[A-Za-z0-9_\-:.~%]{12,}$")


def _expand(url: str, environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """Expand `${VAR}`; return the URL and the values substituted (all treated as secrets)."""
    values: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in environ:
            raise ValueError(f"environment variable {name} is not set "
                             f"(used in notification URL {redact_url(url)})")
        values.append(environ[name])
        return environ[name]

    return _VAR.sub(sub, url), values


def expand_env(url: str, environ: Mapping[str, str] = os.environ) -> str:
    """Replace each `${VAR}` in url by its value; an unset VAR raises ValueError naming it."""
    return _expand(url, environ)[0]


def redact(text: str, secrets: Iterable[str]) -> str:
    """Replace every occurrence of each secret (as written or URL-quoted) by `***`."""
    forms = set()
    for s in secrets:
        if s:
            forms.add(s)
            forms.add(quote(s, safe=""))
            forms.add(quote(s, safe="/:@"))
    # Longest first, so a secret that contains another is masked whole.
    for s in sorted(forms, key=len, reverse=True):
        text = text.replace(s, MASK)
    return text


def _parts(url: str) -> tuple[str, list[tuple[str, bool]]] | None:
    """Split a URL into (scheme, [(piece, is_secret), ...]) whose pieces concatenate back to the rest."""
    m = _URL.match(url)
    if not m:
        return None
    scheme, rest = m.group(1), m.group(2)
    token_scheme = scheme.lower() in TOKEN_SCHEMES
    head, qmark, query = rest.partition("?")
    netloc, slash, path = head.partition("/")
    out: list[tuple[str, bool]] = []
    if "@" in netloc:
        userinfo, hostport = netloc.rsplit("@", 1)
        user, colon, password = userinfo.partition(":")
        out += [(user, token_scheme and not colon), (colon, False), (password, bool(password)),
                ("@", False)]
    else:
        hostport = netloc
    host, colon, port = hostport.partition(":")
    # In token schemes the "host" is often a token (tgram://123:ABC/chat); keep real host names.
    host_secret = token_scheme and not ("." in host or host == "localhost")
    out += [(host, host_secret and bool(host)), (colon, False),
            (port, host_secret and not port.isdigit())]
    if slash:
        out.append(("/", False))
        segments = path.split("/")
        for i, seg in enumerate(segments):
            keep = seg[:1] in ("#", "@", "+", "") or not (token_scheme or _TOKENISH.match(seg))
            out.append((seg, not keep))
            if i < len(segments) - 1:
                out.append(("/", False))
    if qmark:
        out.append(("?", False))
        pairs = query.split("&")
        for i, pair in enumerate(pairs):
            key, eq, value = pair.partition("=")
            out += [(key, False), (eq, False), (value, bool(eq and value and _SECRET_KEY.search(key)))]
            if i < len(pairs) - 1:
                out.append(("&", False))
    return scheme, out


def url_secrets(url: str) -> list[str]:
    """The credential pieces of a URL (what `redact_url` hides), for `redact`."""
    parts = _parts(url)
    return [] if parts is None else [p for p, secret in parts[1] if secret and p]


def redact_url(url: str) -> str:
    """A URL safe to display: passwords, token path segments and credential query values become ***."""
    parts = _parts(url)
    if parts is None:
        return url if "/" in url or not url else MASK  # a file path is fine; a bare word may be a token
    scheme, pieces = parts
    return scheme + "://" + "".join(MASK if secret and p else p for p, secret in pieces)


class RedactFilter(logging.Filter):
    """A logging filter that masks known secrets in each record's message and traceback."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: show its template only
            message = str(record.msg)
        record.msg, record.args = redact(message, self.secrets), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


# One filter for the process: every sink registers its secrets here.
LOG_FILTER = RedactFilter()
_factory_installed = False


def register_secrets(values: Iterable[str]) -> None:
    """Add values to the process-wide redaction set applied to every log record created from now on."""
    global _factory_installed
    LOG_FILTER.secrets.update(v for v in values if v)
    if _factory_installed:
        return
    # A logger filter sees only records of that very logger (not apprise's, urllib3's or ones created
    # later), and handler filters belong to whoever configures logging; the record factory sees all.
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        LOG_FILTER.filter(record)
        return record

    logging.setLogRecordFactory(factory)
    _factory_installed = True
