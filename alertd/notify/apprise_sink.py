"""Send rendered alert events through apprise: every channel is an apprise URL or config-file entry."""
from __future__ import annotations

import logging
import os
import re
from typing import Mapping

import apprise
from apprise import AppriseResultStatus, NotifyFormat
from apprise.common import MATCH_ALL_TAG

from alertd.notify import apprise_plugins, render
from alertd.notify.secrets import _expand, redact, redact_url, register_secrets, url_secrets
from alertd.record import AlertEvent

log = logging.getLogger(__name__)

# "ops,oncall=slack://..." gives the URL tags, as in apprise's text config format.
_TAGGED = re.compile(r"^\s*([\w\-, ]+)=(?=[A-Za-z][A-Za-z0-9+.-]*://)(.*)$", re.S)


def _split_tags(entry: str) -> tuple[list[str], str]:
    m = _TAGGED.match(entry)
    if not m:
        return [], entry.strip()
    return [t.strip() for t in m.group(1).split(",") if t.strip()], m.group(2).strip()


class AppriseSink:
    """A thin adapter: one Apprise object built from URLs (with ${ENV} expanded) and/or an apprise config file.

        sink = AppriseSink(["json://127.0.0.1:8080/hook", "ops=slack://${SLACK_TOKEN}/#alerts"])
        sink.send(event)              # every URL
        sink.send(event, tag="ops")   # the URLs tagged ops

    apprise reports one result per call, so each service gets its own Apprise object: when one of two
    URLs fails, the retry of that event goes to the failed one only (no duplicate for the other).
    """

    def __init__(self, urls: list[str], config: str | None = None,
                 environ: Mapping[str, str] = os.environ) -> None:
        self.secrets: list[str] = []
        # Sequential mode: each Apprise here holds one service, and apprise's worker pool would
        # leave process-wide threads behind for nothing.
        asset = apprise.AppriseAsset(async_mode=False)
        master = apprise.Apprise(asset=asset)
        tagged = []
        for entry in urls:
            tags, url = _split_tags(entry)
            url, values = _expand(url, environ)
            # Register before apprise sees the URL: it may log the URL while parsing it.
            self.secrets += values + url_secrets(url)
            tagged.append((tags, url))
        register_secrets(self.secrets)
        apprise_plugins.load_for([url for _, url in tagged], config)
        for tags, url in tagged:
            if not master.add(url, tag=tags or None):
                raise ValueError(f"not a valid apprise URL: {self._show(url)}")
        if config is not None:
            if "://" not in config and not os.path.isfile(config):
                raise ValueError(f"apprise config file not found: {config}")
            cfg = apprise.AppriseConfig(asset=asset)
            if not cfg.add(config):
                raise ValueError(f"cannot load apprise config: {redact_url(config)}")
            master.add(cfg)
        self._services: list[tuple[str, apprise.Apprise]] = []
        for service in master:  # iterating loads the config file's entries too
            self.secrets += url_secrets(service.url(privacy=False))
            one = apprise.Apprise(asset=asset)
            one.add(service)
            self._services.append((service, one))
        register_secrets(self.secrets)
        if not self._services:
            raise ValueError("no notification URL: give at least one apprise URL or a config "
                             "file with entries")
        # Services that already took the event being retried (the outbox retries its head only).
        self._retry_key: str | None = None
        self._done: set[int] = set()

    def _show(self, url: str) -> str:
        return redact(redact_url(url), self.secrets)

    @property
    def services(self) -> list:
        """The apprise service objects, one per URL (for display use `describe()`)."""
        return [s for s, _ in self._services]

    def describe(self) -> list[str]:
        """Each destination as a redacted URL with its tags, for logs and `alertd check`."""
        out = []
        for service, _ in self._services:
            tags = f" tags={','.join(sorted(str(t) for t in service.tags))}" if service.tags else ""
            out.append(self._show(service.url(privacy=True)) + tags)
        return out

    def send(self, event: AlertEvent, tag: str | None = None, attach: str | None = None) -> bool:
        """Notify every service matching tag; True when all took it (or none matches: retry can't help)."""
        key = f"{event.to_json()}|{event.action}|{tag}|{attach}"
        if key != self._retry_key:
            self._retry_key, self._done = key, set()
        title, body, kind = render.title(event), render.body(event), render.notify_type(event)
        matched = failed = 0
        for i, (service, ap) in enumerate(self._services):
            if i in self._done:
                matched += 1
                continue
            try:
                result = ap.notify(body=body, title=title, notify_type=kind,
                                   body_format=NotifyFormat.TEXT,
                                   tag=tag if tag else MATCH_ALL_TAG, attach=attach)
                status = result.status
            except Exception as e:  # apprise promises not to raise; a plugin bug must not kill us
                log.warning("notify %s raised %s: %s", self._show(service.url(privacy=True)),
                            type(e).__name__, redact(str(e), self.secrets))
                status = AppriseResultStatus.FAILURE
            if status == AppriseResultStatus.NOMATCH:
                continue
            matched += 1
            if status == AppriseResultStatus.SUCCESS:
                self._done.add(i)
            else:
                failed += 1
                log.warning("delivery of %s to %s failed (%s)", event.key(),
                            self._show(service.url(privacy=True)), status.name.lower())
        if matched == 0:
            log.error("no notification URL has tag %r: dropping %s", tag, event.key())
            return True
        if failed == 0:
            self._retry_key, self._done = None, set()
        return failed == 0
