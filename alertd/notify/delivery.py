"""The delivery thread: pumps an Outbox so a slow or dead receiver never delays evaluation."""
from __future__ import annotations

import threading
import time

from alertd.notify.outbox import Outbox
from alertd.notify.policy import Notification


class Delivery(threading.Thread):
    """Sends what is due, sleeps until the next retry or a new notification.

        delivery = Delivery(Outbox(state_dir + "/outbox", sink.send)); delivery.start()
        delivery.put(notification)   # journaled before it returns
        delivery.drain(timeout=5.0)  # at exit: try what is pending, then stop
    """

    def __init__(self, outbox: Outbox):
        super().__init__(name="alertd-delivery", daemon=True)
        self.outbox = outbox
        self.wakeup = threading.Event()
        self._deadline: float | None = None  # set by drain(): flush until then, then stop

    def put(self, note: Notification) -> bool:
        """Queue a notification; False when its alert events were queued already (a re-evaluation)."""
        queued = self.outbox.put(note.event, tag=note.tag, ids=note.ids)
        if queued:
            self.wakeup.set()
        return queued

    def known(self, event_id: str) -> bool:
        """True when a notification for this alert event id is in the outbox's journal."""
        return self.outbox.known(event_id)

    def run(self) -> None:
        while self._deadline is None:
            # Clear before pumping: a put() that lands during the pump or before the wait keeps
            # the flag set and is sent at once (clearing after the wait lost such wake-ups: 1 s late).
            self.wakeup.clear()
            self.outbox.pump()
            due = self.outbox.next_due()
            self.wakeup.wait(timeout=1.0 if due is None else max(0.01, min(due, 1.0)))
        # Leaving: flush what is pending at once, whatever its backoff, until the deadline.
        while self.outbox.pending() and time.monotonic() < self._deadline:
            self.outbox.retry_now()
            if not self.outbox.pump():
                time.sleep(0.2)

    def drain(self, timeout: float) -> None:
        """Try to deliver what is pending for about `timeout` seconds, then stop the thread.

        With a state dir whatever still fails stays journaled for the next start."""
        self._deadline = time.monotonic() + timeout
        self.wakeup.set()
        if self.is_alive():
            self.join(timeout=timeout + 10.0)  # a send under way finishes (apprise's own timeouts)
        else:
            self.run()
