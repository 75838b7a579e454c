"""Feeds the envelopes factum really wrote (read back from its stores by the Rust test)
through the generated module: every one must parse and re-serialise to the same JSON,
every malformed one must be rejected with a ValidationError at the expected location. Type-checked with
``mypy --strict`` together with the generated modules."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import ValidationError

from generated import (
    EventEnvelope,
    OrderPlacedV1Event,
    OrderPlacedV2Event,
    event_envelope_to_json,
    parse_event_envelope,
    parse_event_envelope_json,
)
from shapes import ShapedV1, ShapeCircle


def describe(event: EventEnvelope) -> str:
    """Narrowing on the union must reach the payload's own type."""
    if isinstance(event, OrderPlacedV2Event):
        currency: str = event.payload.currency
        return f"{len(event.payload.lines)} line(s) in {currency}"
    match event:
        case OrderPlacedV1Event(payload=payload):
            return f"{len(payload.lines)} line(s) in Eur (version {event.schema_version})"
        case _:
            return event.name


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        cases: dict[str, Any] = json.load(file)
    envelopes: list[dict[str, str]] = cases["envelopes"]
    malformed: list[dict[str, Any]] = cases["malformed"]

    seen: set[tuple[str, int]] = set()
    parsed: dict[str, int] = {}
    total: dict[str, int] = {}
    for case in envelopes:
        store, text = case["store"], case["text"]
        total[store] = total.get(store, 0) + 1
        data = json.loads(text)
        event = parse_event_envelope(data)
        dumped = event.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if dumped != data:
            raise AssertionError(f"round trip changed the event:\n{data}\n{dumped}")
        if json.loads(event_envelope_to_json(event)) != data:
            raise AssertionError(f"JSON round trip changed {text}")
        if parse_event_envelope_json(text) != event:
            raise AssertionError(f"parsing the text differs from parsing the object: {text}")
        seen.add((event.name, event.schema_version))
        parsed[store] = parsed.get(store, 0) + 1
        print(f"ok ({store}) {event.name} v{event.schema_version}: {describe(event)}")
    for store, count in total.items():
        print(f"parsed {parsed.get(store, 0)} of {count} real envelopes from {store}")

    for bad in malformed:
        try:
            parse_event_envelope(json.loads(bad["text"]))
        except ValidationError as error:
            locations = [list(detail["loc"]) for detail in error.errors()]
            if bad["loc"] not in locations:
                raise AssertionError(f"expected an error at {bad['loc']}, got {error}") from None
            print(f"rejected at {bad['loc']}: {error.errors()[0]['msg']}")
        else:
            raise AssertionError(f"accepted a malformed event: {bad['text']}")

    print(
        f"checked {len(envelopes)} real envelopes ({len(seen)} name/version pairs)"
        f" and {len(malformed)} malformed ones"
    )

    # The synthetic module: maps, nullables, tagged unions, plain unions, JsonValue,
    # optional enums, aliased keyword properties and dates.
    base: dict[str, Any] = {
        "tags": {"a": "b"},
        "note": None,
        "shape": {"kind": "Circle", "r": 1.5},
        "maybe": None,
        "either": [1],
        "any": {"x": [1, None]},
    }
    accepted = [
        base,
        {**base, "shape": {"kind": "Square"}, "maybe": {"kind": "Circle", "r": 2.0},
         "either": "text", "size": "M", "class": True, "on": "2026-01-02"},
        {**base, "note": "n", "any": None},
    ]
    for data in accepted:
        shaped = ShapedV1.model_validate(data)
        dumped = shaped.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if dumped != data:
            raise AssertionError(f"shapes round trip changed:\n{data}\n{dumped}")
    circle = ShapedV1.model_validate(base).shape
    if not isinstance(circle, ShapeCircle) or circle.r != 1.5:
        raise AssertionError(f"the tagged union did not pick ShapeCircle: {circle!r}")
    rejected = [
        {**base, "shape": {"kind": "Triangle"}},
        {**base, "shape": {"kind": "Circle"}},
        {**base, "size": "XL"},
        {**base, "tags": {"a": 1}},
        {**base, "either": [1.5]},
        {k: v for k, v in base.items() if k != "note"},
    ]
    for data in rejected:
        try:
            ShapedV1.model_validate(data)
        except ValidationError:
            continue
        raise AssertionError(f"shapes accepted {data}")
    print(f"shapes: {len(accepted)} accepted, {len(rejected)} rejected")


if __name__ == "__main__":
    main()
