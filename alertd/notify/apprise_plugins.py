"""Load only the apprise plugins that the configured URLs use.

The first URL added to apprise imports every notification plugin it ships (~130 modules, with
requests-oauthlib and the CJK codecs some of them need): ~16 MB of a daemon whose whole footprint
is ~90 MB, for the one or two services a run notifies. Which plugin serves a URL is known only to
apprise's loader (`json://` is custom_json.py, `mailto://` email/, a pasted `https://hooks.slack.com`
URL whatever plugin's native-URL parser claims it), so a short-lived child process asks apprise
itself; this process then imports those plugin modules alone and registers their classes through
the plugin manager's public add(). Anything the child cannot settle (a remote config, a failure)
falls back to apprise's usual load-everything, so a URL is accepted or refused exactly as before.

Child protocol: stdin {"urls": [...], "config": path-or-null}, stdout [[module, class], ...].
URLs go through the pipe, never argv, since they may hold tokens.
"""
from __future__ import annotations

import importlib
import json
import subprocess
import sys
import tempfile

from apprise.manager_plugins import NotificationManager

_MGR = NotificationManager()  # a process-wide singleton in apprise
# True once this process registered plugins one by one instead of apprise's full load.
_narrowed = False


# The child: builds the URLs and config file as the sink will, and names each service's class.
# Its own code, not the package's (importing alertd.notify would import polars for nothing).
# apprise logs what it refuses to stderr, which the parent drops: such a line may quote a token,
# and the parent reports the refusal itself, redacted.
_CHILD = """
import json, sys
import apprise
asked = json.load(sys.stdin)
master = apprise.Apprise()
for url in asked["urls"]:
    master.add(url)
if asked["config"] is not None:
    cfg = apprise.AppriseConfig()
    cfg.add(asked["config"])
    master.add(cfg)
json.dump(sorted({(type(s).__module__, type(s).__name__) for s in master}), sys.stdout)
"""


def load_for(urls: list[str], config: str | None) -> None:
    """Make apprise able to parse these URLs and this config file, loading as few plugins as it can."""
    global _narrowed
    if _MGR and not _narrowed:
        return  # apprise already loaded everything in this process
    if _narrowed and config is None and all(url.split("://", 1)[0].lower() in _MGR for url in urls):
        return  # an earlier sink of this process registered each URL's plugin
    plugins = None if config is not None and "://" in config else _ask_child(urls, config)
    if plugins is None:
        load_all()
        return
    if not _MGR:
        # Marks the manager loaded with no native plugin, so that no later lookup triggers the full
        # scan; an empty directory is the one load_modules() path that imports nothing.
        with tempfile.TemporaryDirectory() as empty:
            _MGR.load_modules(path=empty)
        _narrowed = True
    registered = set(_MGR.plugins())
    for module, name in plugins:
        cls = getattr(importlib.import_module(module), name)
        if cls not in registered:
            _MGR.add(cls)


def load_all() -> None:
    """apprise's own full load (what it does by itself when nobody narrowed it first)."""
    global _narrowed
    if _narrowed:
        _MGR.unload_modules()
        _narrowed = False
    _MGR.load_modules()


def _ask_child(urls: list[str], config: str | None) -> list[tuple[str, str]] | None:
    try:
        done = subprocess.run([sys.executable, "-c", _CHILD], capture_output=True, timeout=60,
                              input=json.dumps({"urls": urls, "config": config}).encode())
        if done.returncode != 0:
            return None
        return [tuple(pair) for pair in json.loads(done.stdout)]
    except (OSError, subprocess.SubprocessError, ValueError, TypeError):
        return None
