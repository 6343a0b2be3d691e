"""Routes: which apprise tags an alert goes to, chosen by its severity, rule, run or labels.

    routes = Routes.parse(["severity=critical:oncall", "rule=Loss*,team=vision:vision-chat"])
    routes.tag(event)   # -> "oncall", "vision-chat", or None (no route matched: every URL)

A route is `MATCHERS:TAGS`. MATCHERS is `*` or comma-separated `key=glob` pairs that must all hold;
`severity`, `rule` and `run` are the event's own fields, any other key is a label. TAGS is a
comma-separated list of apprise tags (the tags given to `--notify 'tag=URL'` entries or in an apprise
config file). The first matching route wins, as in Alertmanager without `continue`. An event no
route matches goes to every URL; apprise also sends everything to URLs tagged `always`.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from alertd.record import AlertEvent


@dataclass(frozen=True)
class Route:
    """One route: all matchers hold -> the notification goes to `tags`."""

    matchers: tuple[tuple[str, str], ...]
    tags: tuple[str, ...]

    def matches(self, event: AlertEvent) -> bool:
        """True when every matcher's glob matches the event's field or label."""
        for key, pattern in self.matchers:
            value = {"severity": event.severity, "rule": event.rule, "run": event.run}.get(key)
            if value is None:
                value = event.labels.get(key)
            if value is None or not fnmatch.fnmatchcase(str(value), pattern):
                return False
        return True


class Routes:
    """An ordered list of routes; `tag(event)` is the apprise tag string for the event."""

    def __init__(self, routes: list[Route] | None = None):
        self.routes = list(routes or [])

    @staticmethod
    def parse(specs: list[str] | None) -> "Routes":
        """Parse `MATCHERS:TAGS` strings; raises ValueError naming the bad one."""
        routes = []
        for spec in specs or []:
            match, sep, tags = spec.rpartition(":")
            tag_list = tuple(t.strip() for t in tags.split(",") if t.strip())
            if not sep or not match.strip() or not tag_list:
                raise ValueError(f"--route {spec!r}: expected MATCHERS:TAGS, e.g. severity=critical:oncall")
            matchers = []
            if match.strip() != "*":
                for pair in match.split(","):
                    key, eq, value = pair.partition("=")
                    if not eq or not key.strip():
                        raise ValueError(f"--route {spec!r}: matcher {pair!r} is not key=glob")
                    matchers.append((key.strip(), value.strip()))
            routes.append(Route(tuple(matchers), tag_list))
        return Routes(routes)

    def tag(self, event: AlertEvent) -> str | None:
        """The first matching route's tags (apprise: any of them), or None for every URL."""
        for route in self.routes:
            if route.matches(event):
                return ",".join(route.tags)
        return None
