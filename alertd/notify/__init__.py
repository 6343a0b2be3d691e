"""Delivery: events -> Policy (repeat, silence, group, storm) -> Outbox (durable, ordered) -> AppriseSink."""
from alertd.notify.apprise_sink import AppriseSink
from alertd.notify.outbox import Outbox
from alertd.notify.policy import Policy, needs_sending
from alertd.notify.secrets import expand_env, redact, redact_url
from alertd.notify.silence import Silence, Silences

__all__ = ["AppriseSink", "Outbox", "Policy", "Silence", "Silences", "expand_env", "needs_sending",
           "redact", "redact_url"]
