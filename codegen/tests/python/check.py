"""Feeds the envelopes factum really wrote (read back from its stores by the Rust test)
through the generated module: every one must parse and re-serialise to the same JSON text;
those of another aggregate are "not mine"; every case (a real envelope with one change) must
be judged as Rust judges it, a rejection naming the path of the change, an acceptance written
back to the same text. Type-checked with ``mypy --strict`` together with the generated
modules."""

from __future__ import annotations

import json
import sys
from typing import Any

from pydantic import ValidationError

from generated import (
    STREAM_TYPES,
    EventEnvelope,
    ForeignEnvelope,
    OrderPlacedV1Event,
    OrderPlacedV2Event,
    event_envelope_to_json,
    parse_event_envelope,
    parse_event_envelope_json,
    read_envelope,
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


def _path(loc: tuple[int | str, ...], data: dict[str, Any]) -> str:
    """A pydantic location as a JSON path (``$.payload.lines[0].quantity``), without the
    union's tags (the event's name, then its version when the name has several)."""
    parts = list(loc)
    if parts and parts[0] == data.get("name"):
        parts.pop(0)
        if parts and isinstance(parts[0], int):
            parts.pop(0)
    return "$" + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in parts)


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        cases: dict[str, Any] = json.load(file)
    envelopes: list[dict[str, str]] = cases["envelopes"]
    foreign: list[str] = cases["foreign"]
    changed: list[dict[str, Any]] = cases["cases"]

    seen: set[tuple[str, int]] = set()
    parsed: dict[str, int] = {}
    total: dict[str, int] = {}
    for case in envelopes:
        store, text = case["store"], case["text"]
        total[store] = total.get(store, 0) + 1
        data = json.loads(text)
        event = parse_event_envelope(data)
        dumped = event.model_dump(mode="json", by_alias=True, exclude_unset=True)
        if dumped != data or list(dumped) != list(data):
            raise AssertionError(f"round trip changed the event:\n{data}\n{dumped}")
        if event_envelope_to_json(event) != text:
            raise AssertionError(f"JSON round trip changed {text}:\n{event_envelope_to_json(event)}")
        if read_envelope(data) != event:
            raise AssertionError(f"read_envelope differs from parse_event_envelope: {text}")
        if parse_event_envelope_json(text) != event:
            raise AssertionError(f"parsing the text differs from parsing the object: {text}")
        seen.add((event.name, event.schema_version))
        parsed[store] = parsed.get(store, 0) + 1
        print(f"ok ({store}) {event.name} v{event.schema_version}: {describe(event)}")
    for store, count in total.items():
        print(f"parsed {parsed.get(store, 0)} of {count} real envelopes from {store}")

    print(f"checked {len(envelopes)} real envelopes ({len(seen)} name/version pairs)")

    # Another aggregate's envelopes, from the same stores: not mine, never an error.
    for text in foreign:
        data = json.loads(text)
        read = read_envelope(data)
        if not isinstance(read, ForeignEnvelope) or read.stream_type in STREAM_TYPES:
            raise AssertionError(f"read_envelope says mine: {text}")
        if event_envelope_to_json(read) != text:
            raise AssertionError(f"read_envelope changed {text}:\n{event_envelope_to_json(read)}")
        try:
            parse_event_envelope(data)
        except ValidationError as error:
            strict = error.errors()[0]
            if strict["loc"] != ("stream_type",) or "read_envelope" not in strict["msg"]:
                raise AssertionError(f"parse_event_envelope must point to read_envelope: {error}") from None
        else:
            raise AssertionError(f"parse_event_envelope accepted a foreign envelope: {text}")
        # A malformed header is an error, whoever's stream it is.
        try:
            read_envelope({**data, "event_id": "not-a-uuid"})
        except ValidationError as error:
            if ("event_id",) not in [detail["loc"] for detail in error.errors()]:
                raise AssertionError(f"expected an error at event_id: {error}") from None
        else:
            raise AssertionError(f"read_envelope accepted a broken header: {text}")
        print(f"not mine: {read.stream_type} {read.name} v{read.schema_version}; parse_event_envelope: {strict['msg']}")
    print(f"read {len(foreign)} foreign envelopes as not mine")

    # One real envelope with one change each: judged as Rust judges it.
    accepted_cases = differences = 0
    for case in changed:
        label, text = case["label"], case["text"]
        data = json.loads(text)
        rust = "accepts" if case["rust"] else "rejects"
        paths: list[str] = []
        messages: list[str] = []
        try:
            event = parse_event_envelope(data)
        except ValidationError as error:
            paths = [_path(detail["loc"], data) for detail in error.errors()]
            messages = [f"{path}: {detail['msg']}" for path, detail in zip(paths, error.errors())]
            if case["accept"]:
                raise AssertionError(f"{label}: rejected, Rust {rust}: {error}") from None
            if case["path"] not in paths:
                raise AssertionError(f"{label}: the error does not name {case['path']}: {error}")
            if case["unknown_event"] and "regenerate" not in str(error):
                raise AssertionError(f"{label}: the error does not say to regenerate: {error}")
        else:
            if not case["accept"]:
                raise AssertionError(f"{label}: accepted, Rust {rust}: {text}")
            accepted_cases += 1
            if event_envelope_to_json(event) != text:
                raise AssertionError(f"{label}: round trip changed\n{text}\n{event_envelope_to_json(event)}")
            if parse_event_envelope_json(text) != event:
                raise AssertionError(f"{label}: parsing the text differs from parsing the object")
        # read_envelope judges an envelope of our stream type as parse_event_envelope does.
        try:
            read = read_envelope(data)
        except ValidationError as error:
            if [_path(detail["loc"], data) for detail in error.errors()] != paths:
                raise AssertionError(f"{label}: read_envelope disagrees: {error}") from None
        else:
            if paths or isinstance(read, ForeignEnvelope):
                raise AssertionError(f"{label}: read_envelope disagrees: {read!r}")
        if case["note"] is not None:
            differences += 1
        verdict = "rejected" if paths else "accepted"
        detail = f": {messages[0]}" if messages else ""
        print(f"case {label}: {verdict} (Rust {rust}){detail}")
    print(
        f"cases: {len(changed)} judged, {accepted_cases} accepted,"
        f" {len(changed) - accepted_cases} rejected;"
        f" {len(changed) - differences} as Rust, {differences} documented differences"
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
        # An absent `Option` is read as `None` by serde, so it is accepted.
        {k: v for k, v in base.items() if k != "note"},
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
