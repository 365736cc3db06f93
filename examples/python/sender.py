"""A notification sender in Python, guarded by `spikebreaker serve` running beside it.

The sender wraps its provider (here a fake one that records what it sends):

1. before each send it asks the sidecar, `POST /v1/check`: allowed, it sends;
2. refused (429), it hands the notification to the sidecar to hold, `POST /v1/hold`, with its
   idempotency key, instead of dropping it or retrying it in a loop;
3. a loop pulls what an operator released, `POST /v1/claim`, sends each item with its key and
   acknowledges it, `POST /v1/ack`; an item it never acknowledges (the process died) comes back
   after its lease, under the same key, so the provider sends it once.

Run against a server: `python examples/python/sender.py 127.0.0.1:8080` (the server's HTTP
address; with `SPIKEBREAKER_SENDER_TOKEN` / `SPIKEBREAKER_ADMIN_TOKEN` in the environment if the
server requires them). It plays a runaway job of 600 sends of one kind, then the operator's
release of what was held, and prints what the provider received, as JSON.
"""

import http.client
import json
import os
import sys
import time


class Sidecar:
    """The sidecar's HTTP routes, JSON over one kept-alive connection."""

    def __init__(self, address, token=None):
        host, port = address.rsplit(":", 1)
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.token = token

    def post(self, path, body):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        self.connection.request("POST", path, body=json.dumps(body), headers=headers)
        response = self.connection.getresponse()
        return response.status, json.loads(response.read() or b"null")


class FakeProvider:
    """Stands for an email or SMS provider: remembers every send by its idempotency key, and
    sends a key once, as real providers do."""

    def __init__(self):
        self.sent = {}

    def send(self, notification, key):
        self.sent.setdefault(key, notification)


class GuardedSender:
    def __init__(self, sidecar, provider):
        self.sidecar = sidecar
        self.provider = provider
        self.held = 0

    def send(self, kind, to, text, key):
        status, answer = self.sidecar.post("/v1/check", {"kind": kind})
        if status == 200:
            self.provider.send({"kind": kind, "to": to, "text": text}, key)
            return "sent"
        if status != 429:
            raise RuntimeError(f"check failed: {status} {answer}")
        # Refused: the sidecar holds it for an operator. 409: the kind flows again, send it.
        notification = {"kind": kind, "to": to, "text": text}
        status, held = self.sidecar.post(
            "/v1/hold", {"kind": kind, "key": key, "recipient": to, "notification": notification}
        )
        if status == 201:
            self.held += 1
            return "held"
        if status == 409:
            self.provider.send(notification, key)
            return "sent"
        raise RuntimeError(f"hold refused ({status}): {held}; keep it and try again later")

    def release_loop(self, until_idle=True):
        """Sends what operators released, at the pace the sidecar lends it."""
        released = 0
        while True:
            status, lent = self.sidecar.post("/v1/claim", {"max": 100})
            if status != 200:
                raise RuntimeError(f"claim failed: {status} {lent}")
            for item in lent["items"]:
                try:
                    self.provider.send(item["notification"], item["key"])
                    outcome = {"token": item["token"], "outcome": "sent"}
                    released += 1
                except Exception as error:  # the provider failed: held again, with the note
                    outcome = {"token": item["token"], "outcome": "failed", "note": str(error)}
                self.sidecar.post("/v1/ack", outcome)
            wait = lent["retry_after_ms"]
            if not lent["items"] and wait is None and until_idle:
                return released
            time.sleep((wait or 1000) / 1000)


def main(address):
    sender = GuardedSender(Sidecar(address, os.environ.get("SPIKEBREAKER_SENDER_TOKEN")), FakeProvider())
    kind = "security.2fa_changed"
    outcomes = [
        sender.send(kind, f"user{i}@example.com", "your two-step settings changed", f"job-7-{i}") for i in range(600)
    ]
    # The operator looks at what was held and releases it (here, all of it, at 6,000 a minute).
    operator = Sidecar(address, os.environ.get("SPIKEBREAKER_ADMIN_TOKEN"))
    status, approved = operator.post(f"/admin/quarantine/{kind}/release", {"per_minute": 6000})
    assert status == 200, approved
    released = sender.release_loop()
    print(
        json.dumps(
            {
                "sent_at_once": outcomes.count("sent"),
                "held": sender.held,
                "approved": approved["approved"],
                "released": released,
                "provider_received": len(sender.provider.sent),
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:8080")
