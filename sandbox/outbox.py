"""Queue NCS deliveries for the transport, applying the random NCS faults on the way.

``ncs_drop`` loses a delivery, ``ncs_duplicate`` sends a second copy with the same noticeId,
``ncs_reorder`` holds a delivery back until the next one of the same channel has gone (or
``HOLD_LIMIT_S`` passed). Every delivery is logged, with its final status, for /_sandbox/ncs.
"""

from __future__ import annotations

from sandbox.ncs_sender import Delivery, Status, Transport
from sandbox.state import World

HOLD_LIMIT_S = 1.0


class Outbox:
    """Hands deliveries to the transport; never blocks on the network."""

    def __init__(self, world: World, transport: Transport) -> None:
        self.world = world
        self.transport = transport

    def publish(self, deliveries: list[Delivery]) -> None:
        """Log, fault and submit ``deliveries`` in order."""
        ready: list[tuple[Delivery, str]] = []
        world = self.world
        with world.lock:
            url = world.webhook_url
            for delivery in deliveries:
                self._log(delivery)
                if not url:
                    delivery.status = "not sent: no webhook_url"
                    continue
                faults = world.faults
                if world.rng.random() < faults.ncs_drop:
                    delivery.status = "dropped"
                    continue
                batch = [delivery]
                if world.rng.random() < faults.ncs_duplicate:
                    extra = delivery.copy_as("fault_duplicate")
                    self._log(extra)
                    batch.append(extra)
                held = world.held.pop(delivery.channel, None)
                world.held_since.pop(delivery.channel, None)
                if held is None and world.rng.random() < faults.ncs_reorder:
                    for item in batch:
                        item.status = "held"
                    world.held[delivery.channel] = batch
                    world.held_since[delivery.channel] = world.clock.now()
                    continue
                ready.extend((item, url) for item in batch + (held or []))
        for item, target in ready:
            self.transport.submit(item, target, self._done)

    def release_held(self, now: float) -> None:
        """Send deliveries held back longer than HOLD_LIMIT_S (nothing followed them)."""
        ready: list[tuple[Delivery, str]] = []
        with self.world.lock:
            for channel, since in list(self.world.held_since.items()):
                if now - since >= HOLD_LIMIT_S:
                    del self.world.held_since[channel]
                    held = self.world.held.pop(channel, [])
                    ready.extend((item, self.world.webhook_url) for item in held)
        for item, url in ready:
            if url:
                self.transport.submit(item, url, self._done)

    def _log(self, delivery: Delivery) -> None:
        delivery.seq = self.world.next_delivery_seq()
        self.world.deliveries.append(delivery)

    def _done(self, delivery: Delivery, status: Status) -> None:
        with self.world.lock:
            delivery.status = status
