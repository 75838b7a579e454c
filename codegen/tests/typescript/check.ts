// Feeds the envelopes factum really wrote (read back from its stores by the Rust test)
// through the generated parser: every one must parse and re-serialise to the same JSON
// text, every malformed one must be rejected with an error naming the path of the mismatch.
// No Node types: the check must compile against the plain ES library only.
import { EventEnvelope, OrderPlacedV2Event, isEventEnvelope, parseEventEnvelope } from "./generated";
import { envelopes, malformed } from "./envelopes";
import { ShapedV1, isShapedV1 } from "./shapes";

declare const console: { log(...values: unknown[]): void };

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, index) => deepEqual(item, b[index]));
  }
  if (typeof a === "object" && typeof b === "object" && a !== null && b !== null) {
    const left = a as Record<string, unknown>;
    const right = b as Record<string, unknown>;
    const keys = Object.keys(left);
    return (
      keys.length === Object.keys(right).length &&
      keys.every((key) => Object.prototype.hasOwnProperty.call(right, key) && deepEqual(left[key], right[key]))
    );
  }
  return false;
}

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
  if (!deepEqual(JSON.parse(written), JSON.parse(text))) throw new Error(`round trip changed ${text}`);
  seen.add(`${event.name}@${event.schema_version}`);
  parsed.set(store, (parsed.get(store) ?? 0) + 1);
  console.log(`ok (${store}) ${event.name} v${event.schema_version}: ${describeEvent(event)}`);
}
for (const [store, count] of total) {
  console.log(`parsed ${parsed.get(store) ?? 0} of ${count} real envelopes from ${store}`);
}

for (const { text, path } of malformed) {
  const input: unknown = JSON.parse(text);
  let message: string | null = null;
  try {
    parseEventEnvelope(input);
  } catch (error) {
    message = error instanceof Error ? error.message : String(error);
  }
  if (message === null) throw new Error(`accepted a malformed event: ${text}`);
  if (!message.includes(`${path}:`)) throw new Error(`the error does not name ${path}: ${message}`);
  if (isEventEnvelope(input)) throw new Error(`isEventEnvelope accepts ${text}`);
  console.log(`rejected: ${message}`);
}

console.log(`checked ${envelopes.length} real envelopes (${seen.size} name/version pairs) and ${malformed.length} malformed ones`);

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
const accepted: ShapedV1[] = [
  shaped,
  { ...shaped, shape: { kind: "Square" }, maybe: { kind: "Circle", r: 2 }, either: "s", size: "M" },
];
const rejected: unknown[] = [
  { ...shaped, shape: { kind: "Circle" } },
  { ...shaped, tags: { a: 1 } },
  { ...shaped, either: [1.5] },
  { ...shaped, maybe: { kind: "Triangle" } },
  { ...shaped, size: "L" },
  { ...shaped, note: undefined },
];
accepted.forEach((value, index) => {
  if (!isShapedV1(value)) throw new Error(`shapes: rejected valid value ${index}`);
});
rejected.forEach((value, index) => {
  if (isShapedV1(value)) throw new Error(`shapes: accepted invalid value ${index}`);
});
console.log(`shapes: ${accepted.length} accepted, ${rejected.length} rejected`);
