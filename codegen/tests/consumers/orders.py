"""A consumer team's code, written by hand against the generated contract (``generated.py``
is schemas/orders/contracts/events.py): it folds the order events factum delivers into a
read model of orders and passes over other domains' events. codegen/tests/consumers.rs
feeds it what factum really delivered -- each store's events read back through the
upcaster, and the messages the NATS publisher sent -- and compares the read model with
the one the Rust aggregate folds. Type-checked with ``mypy --strict``."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from generated import (
    EventEnvelope,
    ForeignEnvelope,
    ItemAddedV2Event,
    ItemRemovedV1Event,
    OrderCancelledV1Event,
    OrderConfirmedV1Event,
    OrderDeliveredV1Event,
    OrderNoteAddedV1Event,
    OrderPlacedV1Event,
    OrderPlacedV2Event,
    OrderShippedV1Event,
    event_envelope_to_json,
    read_envelope,
)


@dataclass
class LineView:
    quantity: int
    unit_price: int


@dataclass
class OrderView:
    status: str
    customer_id: str
    currency: str | None
    lines: dict[str, LineView] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        total = sum(line.unit_price * line.quantity for line in self.lines.values())
        return {
            "status": self.status,
            "customer_id": self.customer_id,
            "currency": self.currency,
            "lines": {
                sku: {"quantity": line.quantity, "unit_price": line.unit_price}
                for sku, line in self.lines.items()
            },
            "total": str(total),
        }


def placed(orders: dict[str, OrderView], event: EventEnvelope) -> OrderView:
    view = orders.get(event.stream_id)
    if view is None:
        raise AssertionError(f"{event.stream_id}: {event.name} before OrderPlaced")
    return view


def apply(orders: dict[str, OrderView], event: EventEnvelope) -> None:
    match event:
        case OrderPlacedV2Event(payload=payload):
            orders[event.stream_id] = OrderView(
                status="Open",
                customer_id=payload.customer_id,
                currency=payload.currency,
                lines={
                    line.sku: LineView(line.quantity, line.unit_price) for line in payload.lines
                },
            )
        case OrderPlacedV1Event():
            # factum delivers every event in its newest version: no v1 upcast to write here.
            raise AssertionError(f"{event.stream_id}: OrderPlaced v1 was delivered, not the newest version")
        case ItemAddedV2Event(payload=payload):
            lines = placed(orders, event).lines
            if payload.sku in lines:
                lines[payload.sku].quantity += payload.quantity
            else:
                lines[payload.sku] = LineView(payload.quantity, payload.unit_price)
        case ItemRemovedV1Event(payload=payload):
            placed(orders, event).lines.pop(payload.sku, None)
        case OrderConfirmedV1Event():
            placed(orders, event).status = "Confirmed"
        case OrderShippedV1Event():
            placed(orders, event).status = "Shipped"
        case OrderDeliveredV1Event():
            placed(orders, event).status = "Delivered"
        case OrderCancelledV1Event():
            placed(orders, event).status = "Cancelled"
        case OrderNoteAddedV1Event():
            placed(orders, event)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        deliveries: list[dict[str, Any]] = json.load(file)
    for delivery in deliveries:
        source: str = delivery["source"]
        orders: dict[str, OrderView] = {}
        mine = foreign = 0
        for text in delivery["texts"]:
            data = json.loads(text)
            event = read_envelope(data)
            if isinstance(event, ForeignEnvelope):
                foreign += 1
                continue
            if json.loads(event_envelope_to_json(event)) != data:
                raise AssertionError(f"{source}: the round trip changed {text}")
            apply(orders, event)
            mine += 1
        model = {stream: view.as_json() for stream, view in orders.items()}
        print(f"{source}: {mine} order events read, {foreign} of other stream types passed over")
        print(f"READMODEL {source} {json.dumps(model)}")


if __name__ == "__main__":
    main()
