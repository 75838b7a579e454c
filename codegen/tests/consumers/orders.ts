// A consumer team's code, written by hand against the generated contract (`generated.ts`
// is schemas/orders/contracts/events.ts): it folds the order events factum delivers into a
// read model of orders and passes over other domains' events. codegen/tests/consumers.rs
// feeds it what factum really delivered — each store's events read back through the
// upcaster, and the messages the NATS publisher sent — and compares the read model with
// the one the Rust aggregate folds.
// No Node types: it must compile against the plain ES library only.
import { EventEnvelope, readEnvelope } from "./generated";
import { deliveries } from "./deliveries";

import { jsonEqual } from "./json_equal";

declare const console: { log(...values: unknown[]): void };

interface LineView {
  quantity: number;
  unit_price: number;
}

interface OrderView {
  status: string;
  customer_id: string;
  currency: string | null;
  lines: Record<string, LineView>;
  total: string;
}

function placed(view: OrderView | undefined, event: EventEnvelope): OrderView {
  if (view === undefined) throw new Error(`${event.stream_id}: ${event.name} before OrderPlaced`);
  return view;
}

function apply(orders: Map<string, OrderView>, event: EventEnvelope): void {
  const view = orders.get(event.stream_id);
  switch (event.name) {
    case "OrderPlaced": {
      // factum delivers every event in its newest version: no v1 upcast to write here.
      if (event.schema_version !== 2) {
        throw new Error(`${event.stream_id}: OrderPlaced v${event.schema_version} was delivered, not the newest version`);
      }
      const lines: Record<string, LineView> = {};
      for (const line of event.payload.lines) {
        lines[line.sku] = { quantity: line.quantity, unit_price: line.unit_price };
      }
      orders.set(event.stream_id, {
        status: "Open",
        customer_id: event.payload.customer_id,
        currency: event.payload.currency,
        lines,
        total: "0",
      });
      return;
    }
    case "ItemAdded": {
      const lines = placed(view, event).lines;
      const existing = lines[event.payload.sku];
      if (existing === undefined) {
        lines[event.payload.sku] = { quantity: event.payload.quantity, unit_price: event.payload.unit_price };
      } else {
        existing.quantity += event.payload.quantity;
      }
      return;
    }
    case "ItemRemoved":
      delete placed(view, event).lines[event.payload.sku];
      return;
    case "OrderConfirmed":
      placed(view, event).status = "Confirmed";
      return;
    case "OrderShipped":
      placed(view, event).status = "Shipped";
      return;
    case "OrderDelivered":
      placed(view, event).status = "Delivered";
      return;
    case "OrderCancelled":
      placed(view, event).status = "Cancelled";
      return;
    case "OrderNoteAdded":
      placed(view, event);
      return;
    default: {
      const unhandled: never = event;
      throw new Error(`unhandled event ${JSON.stringify(unhandled)}`);
    }
  }
}

for (const { source, texts } of deliveries) {
  const orders = new Map<string, OrderView>();
  let mine = 0;
  let foreign = 0;
  for (const text of texts) {
    const input: unknown = JSON.parse(text);
    const read = readEnvelope(input);
    if (!read.mine) {
      foreign += 1;
      continue;
    }
    if (!jsonEqual(JSON.parse(JSON.stringify(read.event)), input)) {
      throw new Error(`${source}: the round trip changed ${text}`);
    }
    apply(orders, read.event);
    mine += 1;
  }
  const model: Record<string, OrderView> = {};
  for (const [stream, view] of orders) {
    let total = 0n;
    for (const line of Object.values(view.lines)) total += BigInt(line.unit_price) * BigInt(line.quantity);
    model[stream] = { ...view, total: total.toString() };
  }
  console.log(`${source}: ${mine} order events read, ${foreign} of other stream types passed over`);
  console.log(`READMODEL ${source} ${JSON.stringify(model)}`);
}
