// Feeds the envelopes factum really wrote (read back from its stores by the Rust test)
// through the generated parser: every one must parse and re-serialise to the same JSON
// text; those of another aggregate are "not mine"; and every case (a real envelope with one
// change) must be judged as Rust judges it (or as the documented difference says), a
// rejection naming the path of the change. No Node types: the check must compile against
// the plain ES library only.
import {
  EventEnvelope,
  ForeignEnvelope,
  OrderPlacedV2Event,
  STREAM_TYPES,
  isEventEnvelope,
  parseEventEnvelope,
  readEnvelope,
} from "./generated";
import { cases, envelopes, foreign } from "./envelopes";
import { ShapedV1, isShapedV1 } from "./shapes";

import { jsonEqual } from "./json_equal";

declare const console: { log(...values: unknown[]): void };

// Narrowing on (name, version) must reach the payload's own type.
function describeEvent(event: EventEnvelope): string {
  if (event.name === "OrderPlaced" && event.schema_version === 2) {
    // The per-event envelope type is what narrowing yields.
    const placed: OrderPlacedV2Event = event;
    const currency: "Eur" | "Usd" | "Gbp" = placed.payload.currency;
    return `${event.payload.lines.length} line(s) in ${currency}`;
  }
  if (event.name === "OrderPlaced") {
    const lines: number = event.payload.lines.length;
    return `${lines} line(s) in Eur (version ${event.schema_version})`;
  }
  return event.name;
}

const seen = new Set<string>();
const parsed = new Map<string, number>();
const total = new Map<string, number>();
for (const { store, text } of envelopes) {
  total.set(store, (total.get(store) ?? 0) + 1);
  const input: unknown = JSON.parse(text);
  const event = parseEventEnvelope(input);
  if (!isEventEnvelope(input)) throw new Error(`isEventEnvelope rejects ${text}`);
  const written = JSON.stringify(event);
  if (written !== text) throw new Error(`round trip changed the text:\n${text}\n${written}`);
  if (!jsonEqual(JSON.parse(written), JSON.parse(text))) throw new Error(`round trip changed ${text}`);
  seen.add(`${event.name}@${event.schema_version}`);
  parsed.set(store, (parsed.get(store) ?? 0) + 1);
  console.log(`ok (${store}) ${event.name} v${event.schema_version}: ${describeEvent(event)}`);
}
for (const [store, count] of total) {
  console.log(`parsed ${parsed.get(store) ?? 0} of ${count} real envelopes from ${store}`);
}

function errorOf(action: () => unknown): string | null {
  try {
    action();
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return null;
}

console.log(`checked ${envelopes.length} real envelopes (${seen.size} name/version pairs)`);

// Real envelopes of our stream types are ours.
for (const { text } of envelopes) {
  const read = readEnvelope(JSON.parse(text));
  if (!read.mine) throw new Error(`readEnvelope says not mine: ${text}`);
  if (JSON.stringify(read.event) !== text) throw new Error(`readEnvelope changed ${text}`);
}

// Another aggregate's envelopes, from the same stores: not mine, never an error.
for (const text of foreign) {
  const input: unknown = JSON.parse(text);
  const read = readEnvelope(input);
  if (read.mine) throw new Error(`readEnvelope says mine: ${text}`);
  const envelope: ForeignEnvelope = read.envelope;
  if (STREAM_TYPES.includes(envelope.stream_type)) throw new Error(`a foreign envelope of ours? ${text}`);
  if (JSON.stringify(envelope) !== text) throw new Error(`readEnvelope changed ${text}`);
  const strict = errorOf(() => parseEventEnvelope(input));
  if (strict === null || !strict.includes("$.stream_type:") || !strict.includes("readEnvelope")) {
    throw new Error(`parseEventEnvelope must refuse a foreign stream type, pointing to readEnvelope: ${strict}`);
  }
  // A malformed header is an error, whoever's stream it is.
  const broken = errorOf(() => readEnvelope({ ...(input as object), event_id: "not-a-uuid" }));
  if (broken === null || !broken.includes("$.event_id:")) throw new Error(`readEnvelope accepted a broken header: ${broken}`);
  console.log(`not mine: ${envelope.stream_type} ${envelope.name} v${envelope.schema_version}; parseEventEnvelope: ${strict}`);
}
console.log(`read ${foreign.length} foreign envelopes as not mine`);

// One real envelope with one change each: judged as Rust judges it.
let accepted = 0;
let differences = 0;
for (const c of cases) {
  const input: unknown = JSON.parse(c.text);
  let event: EventEnvelope | null = null;
  const message = errorOf(() => {
    event = parseEventEnvelope(input);
  });
  const verdict = message === null ? "accepted" : "rejected";
  const rust = c.rust ? "accepts" : "rejects";
  if ((message === null) !== c.accept) {
    throw new Error(`${c.label}: ${verdict}, Rust ${rust}${c.note === null ? "" : `, expected otherwise: ${c.note}`}: ${message ?? c.text}`);
  }
  if (isEventEnvelope(input) !== c.accept) throw new Error(`${c.label}: isEventEnvelope disagrees`);
  // readEnvelope judges an envelope of our stream type as parseEventEnvelope does.
  let mine = true;
  const readMessage = errorOf(() => {
    mine = readEnvelope(input).mine;
  });
  if (!mine || readMessage !== message) throw new Error(`${c.label}: readEnvelope disagrees: ${readMessage}`);
  if (message === null) {
    accepted++;
    if (JSON.stringify(event) !== c.text) throw new Error(`${c.label}: round trip changed ${c.text}`);
  } else {
    if (!message.includes(`${c.path}:`)) throw new Error(`${c.label}: the error does not name ${c.path}: ${message}`);
    if (c.note !== null && !message.includes("2^53")) throw new Error(`${c.label}: the error does not say why: ${message}`);
    if (c.unknown_event && !message.includes("regenerate")) throw new Error(`${c.label}: the error does not say to regenerate: ${message}`);
  }
  if (c.note !== null) differences++;
  console.log(`case ${c.label}: ${verdict} (Rust ${rust})${c.note === null ? "" : ` [documented: ${c.note}]`}${message === null ? "" : `: ${message}`}`);
}
console.log(
  `cases: ${cases.length} judged, ${accepted} accepted, ${cases.length - accepted} rejected; ${cases.length - differences} as Rust, ${differences} documented differences`,
);

// A synthetic module (shapes.ts) with the constructs the order domain does not use: maps,
// nullables, tagged unions, plain unions, `unknown` and an optional enum.
const shaped: ShapedV1 = {
  tags: { a: "b" },
  note: null,
  shape: { kind: "Circle", r: 1.5 },
  maybe: null,
  either: [1],
  any: { x: 1 },
};
// An absent `Option` (`note`) is read as `None` by serde, so it is accepted.
const { note: _absent, ...withoutNote } = shaped;
const valid: ShapedV1[] = [
  shaped,
  { ...shaped, shape: { kind: "Square" }, maybe: { kind: "Circle", r: 2 }, either: "s", size: "M" },
  withoutNote,
];
const rejected: unknown[] = [
  { ...shaped, shape: { kind: "Circle" } },
  { ...shaped, tags: { a: 1 } },
  { ...shaped, either: [1.5] },
  { ...shaped, maybe: { kind: "Triangle" } },
  { ...shaped, size: "L" },
  { ...shaped, note: 5 },
];
valid.forEach((value, index) => {
  if (!isShapedV1(value)) throw new Error(`shapes: rejected valid value ${index}`);
});
rejected.forEach((value, index) => {
  if (isShapedV1(value)) throw new Error(`shapes: accepted invalid value ${index}`);
});
console.log(`shapes: ${valid.length} accepted, ${rejected.length} rejected`);
