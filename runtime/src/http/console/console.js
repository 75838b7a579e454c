// The factum console: plain DOM, no framework, nothing loaded from elsewhere. Every value
// from the server is set as text, never as markup.
"use strict";

const state = { token: null, me: null, timer: null, tail: null };

function el(tag, attributes, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes || {})) {
    if (key === "onclick" || key === "onsubmit") node[key] = value;
    else if (value !== null && value !== undefined) node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function status(text) {
  document.getElementById("status").textContent = text || "";
}

async function api(path, options) {
  const response = await fetch(path, {
    ...(options || {}),
    headers: { Authorization: `Bearer ${state.token}`, Accept: "application/json" },
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && (body.detail || body.title);
    throw new Error(`${response.status} ${detail || response.statusText}`);
  }
  return body;
}

function view(...children) {
  const section = document.getElementById("view");
  section.replaceChildren(...children);
}

function link(href, text) {
  return el("a", { href }, text);
}

function time(text) {
  return text ? new Date(text).toISOString().replace("T", " ").replace("Z", "") : "";
}

// Streams: search by part of the id, paged.
async function showStreams(query) {
  const input = el("input", { id: "search", name: "contains", placeholder: "part of a stream id", value: query.get("contains") || "" });
  const form = el("form", { class: "inline", onsubmit: (event) => {
    event.preventDefault();
    location.hash = `#/streams?contains=${encodeURIComponent(input.value)}`;
  } }, input, el("button", { type: "submit" }, "Search"));
  const rows = el("tbody");
  const table = el("table", { id: "streams" },
    el("thead", {}, el("tr", {}, el("th", {}, "stream"), el("th", {}, "type"), el("th", { class: "num" }, "version"))),
    rows);
  const more = el("button", { id: "more", hidden: "" }, "More");
  view(el("h2", {}, "Streams"), form, table, more);
  let after = "";
  async function page() {
    const params = new URLSearchParams({ limit: "50" });
    if (query.get("contains")) params.set("contains", query.get("contains"));
    if (after) params.set("after", after);
    const body = await api(`/console/api/streams?${params}`);
    for (const stream of body.streams) {
      rows.append(el("tr", { "data-stream": stream.streamId },
        el("td", {}, link(`#/stream/${encodeURIComponent(stream.streamId)}`, stream.streamId)),
        el("td", {}, stream.streamType),
        el("td", { class: "num" }, stream.version)));
    }
    after = body.next || "";
    more.hidden = !body.next;
    if (rows.children.length === 0) rows.append(el("tr", {}, el("td", { colspan: "3", class: "muted" }, "no stream matches")));
  }
  more.onclick = () => page().catch((error) => status(error.message));
  await page();
}

// One stream's events, read through GET /streams/{id} (the read policy decides, the
// access record keeps the read).
async function showStream(streamId, version) {
  const body = await api(`/streams/${encodeURIComponent(streamId)}`);
  if (version !== undefined) {
    const event = body.events.find((candidate) => String(candidate.stream_version) === version);
    if (!event) throw new Error(`${streamId} has no version ${version}`);
    return showEvent(event);
  }
  const rows = body.events.map((event) => el("tr", { "data-position": event.position },
    el("td", { class: "num" }, link(`#/stream/${encodeURIComponent(streamId)}/${event.stream_version}`, event.stream_version)),
    el("td", { class: "num" }, event.position),
    el("td", {}, event.name),
    el("td", {}, time(event.timestamp)),
    el("td", {}, event.metadata && event.metadata.correlation_id
      ? link(`#/trace/${event.metadata.correlation_id}`, event.metadata.correlation_id) : "")));
  view(el("h2", {}, `${body.streamType} ${streamId}`),
    el("p", { class: "muted" }, `version ${body.version}`),
    el("table", { id: "events" },
      el("thead", {}, el("tr", {}, el("th", { class: "num" }, "version"), el("th", { class: "num" }, "position"),
        el("th", {}, "event"), el("th", {}, "time"), el("th", {}, "correlation"))),
      el("tbody", {}, rows)));
}

function showEvent(event) {
  const { payload, metadata, ...envelope } = event;
  view(el("h2", { id: "event-title" }, `${event.name} v${event.schema_version}`),
    el("p", {}, link(`#/stream/${encodeURIComponent(event.stream_id)}`, `${event.stream_id}`),
      ` version ${event.stream_version}, position ${event.position}`),
    el("h3", {}, "Envelope"), el("pre", { id: "envelope" }, JSON.stringify(envelope, null, 2)),
    el("h3", {}, "Metadata"), el("pre", { id: "metadata" }, JSON.stringify(metadata, null, 2)),
    el("h3", {}, "Payload"), el("pre", { id: "payload" }, JSON.stringify(payload, null, 2)));
}

// A correlation's causal tree: commands, their events, what applied them, what they caused.
async function showTrace(correlationId) {
  const input = el("input", { id: "correlation", placeholder: "correlation id", value: correlationId || "" });
  const form = el("form", { class: "inline", onsubmit: (event) => {
    event.preventDefault();
    location.hash = `#/trace/${encodeURIComponent(input.value.trim())}`;
  } }, input, el("button", { type: "submit" }, "Trace"));
  if (!correlationId) return view(el("h2", {}, "Trace"), form);
  const tree = await api(`/console/api/trace/${encodeURIComponent(correlationId)}`);
  function command(node) {
    const by = node.actor ? ` by ${node.actor_kind ? `${node.actor_kind}:` : ""}${node.actor}` : "";
    return el("li", { class: "command" }, el("strong", {}, `command ${node.command_id}`), by,
      el("ul", {}, node.events.map((event) => el("li", { class: "event", "data-position": event.position },
        link(`#/stream/${encodeURIComponent(event.stream_id)}/${event.stream_version}`, `${event.position} ${event.name}`),
        ` in ${event.stream_id} v${event.stream_version}`,
        event.applied_by.length ? el("span", { class: "muted" }, ` → ${event.applied_by.join(", ")}`) : null,
        event.caused.length ? el("ul", {}, event.caused.map(command)) : null))));
  }
  view(el("h2", {}, "Trace"), form,
    el("div", { class: "tree", id: "trace" }, el("ul", {}, tree.commands.map(command))));
}

// Projections: live lag (refreshed every two seconds) and parked events; replay and
// rebuild for operators. A rebuild runs on the server on its own; its progress shows
// here as the page refreshes.
async function showProjections() {
  const body = await api("/console/api/projections");
  const operator = state.me && state.me.operator;
  const act = async (path, what) => {
    if (!confirm(`${what}?`)) return;
    try {
      await api(path, { method: "POST" });
      status("");
      await showProjections();
    } catch (error) {
      status(error.message);
    }
  };
  const rows = body.projections.map((projection) => el("tr", { "data-projection": projection.name },
    el("td", {}, projection.name),
    el("td", { class: "num" }, projection.currentVersion),
    el("td", {}, projection.state || "not built"),
    el("td", { class: "num checkpoint" }, projection.checkpoint),
    el("td", { class: `num lag ${projection.lagEvents > 0 ? "lagging" : "caught-up"}` }, projection.lagEvents),
    el("td", { class: "num" }, projection.lagSeconds === null ? "?" : projection.lagSeconds.toFixed(1)),
    el("td", { class: "num parked" }, projection.parked.length),
    el("td", { class: "rebuild-status" }, rebuildStatus(projection.rebuild)),
    el("td", {}, el("button", {
      class: "rebuild",
      disabled: operator && !(projection.rebuild && projection.rebuild.state === "running") ? null : "",
      onclick: () => act(`/console/api/projections/${encodeURIComponent(projection.name)}/rebuild`, `Rebuild ${projection.name}`),
    }, "Rebuild"))));
  const parked = body.projections.flatMap((projection) => projection.parked.map((event) =>
    el("tr", { "data-parked": `${projection.name}@${event.position}` },
      el("td", {}, projection.name), el("td", { class: "num" }, event.position), el("td", {}, event.name),
      el("td", {}, `${event.streamId} v${event.streamVersion}`), el("td", {}, event.error),
      el("td", { class: "num" }, event.attempts),
      el("td", {}, el("button", {
        class: "replay", disabled: operator ? null : "",
        onclick: () => act(`/console/api/projections/${encodeURIComponent(projection.name)}/parked/${event.position}/replay`,
          `Replay event ${event.position} into ${projection.name}`),
      }, "Replay")))));
  view(el("h2", {}, "Projections"), el("p", { class: "muted", id: "head" }, `head of the log: ${body.head}`),
    el("table", { id: "projections" },
      el("thead", {}, el("tr", {}, ["projection", "version", "state", "checkpoint", "lag (events)", "lag (s)", "parked", "rebuild", ""]
        .map((heading) => el("th", {}, heading)))),
      el("tbody", {}, rows)),
    el("h3", {}, "Parked events"),
    parked.length
      ? el("table", { id: "parked" }, el("thead", {}, el("tr", {}, ["projection", "position", "event", "stream", "error", "attempts", ""]
        .map((heading) => el("th", {}, heading)))), el("tbody", {}, parked))
      : el("p", { class: "muted", id: "parked" }, "none"));
  state.timer = setTimeout(() => route().catch((error) => status(error.message)), 2000);
}

// A projection's last rebuild from the console, in words.
function rebuildStatus(rebuild) {
  if (!rebuild) return "";
  switch (rebuild.state) {
    case "running": return `rebuilding: ${rebuild.position} of ${rebuild.head}`;
    case "rebuilt": return `rebuilt: ${rebuild.applied} events applied (by ${rebuild.by})`;
    default: return `failed: ${rebuild.error}`;
  }
}

// The live tail: the log as it grows, over Server-Sent Events read with fetch (which,
// unlike EventSource, sends the bearer token).
async function showTail() {
  const list = el("ol", { id: "tail", reversed: "" });
  view(el("h2", {}, "Live tail"), el("p", { class: "muted" }, "the newest event first"), list);
  const controller = new AbortController();
  state.tail = controller;
  const response = await fetch("/console/api/tail", {
    headers: { Authorization: `Bearer ${state.token}`, Accept: "text/event-stream" },
    signal: controller.signal,
  });
  if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const data = frame.split("\n").filter((line) => line.startsWith("data:")).map((line) => line.slice(5).trim()).join("\n");
      if (!data) continue;
      const event = JSON.parse(data);
      list.prepend(el("li", { "data-position": event.position, value: event.position },
        `${time(event.timestamp)} `, el("strong", {}, event.name), " in ",
        link(`#/stream/${encodeURIComponent(event.streamId)}/${event.streamVersion}`, `${event.streamId} v${event.streamVersion}`),
        event.correlationId ? el("span", { class: "muted" }, " ", link(`#/trace/${event.correlationId}`, "trace")) : null));
    }
  }
}

async function route() {
  clearTimeout(state.timer);
  if (state.tail) {
    state.tail.abort();
    state.tail = null;
  }
  const hash = location.hash.replace(/^#\/?/, "") || "streams";
  const [path, search] = hash.split("?");
  const parts = path.split("/").map(decodeURIComponent);
  for (const anchor of document.querySelectorAll("nav a")) {
    anchor.classList.toggle("active", anchor.dataset.view === parts[0] || (parts[0] === "stream" && anchor.dataset.view === "streams"));
  }
  status("");
  switch (parts[0]) {
    case "stream": return showStream(parts[1], parts[2]);
    case "trace": return showTrace(parts[1]);
    case "projections": return showProjections();
    case "tail": return showTail();
    default: return showStreams(new URLSearchParams(search || ""));
  }
}

async function start() {
  // A token in the fragment (`#token=...`, never sent to a server) is taken and removed.
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (fragment.get("token")) {
    sessionStorage.setItem("factum-console-token", fragment.get("token"));
    const view = fragment.get("view") || "streams";
    history.replaceState(null, "", `#/${view}`);
  }
  state.token = sessionStorage.getItem("factum-console-token");
  const login = document.getElementById("login");
  if (!state.token) {
    login.hidden = false;
    document.getElementById("login-form").onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem("factum-console-token", document.getElementById("token").value);
      location.reload();
    };
    return;
  }
  try {
    state.me = await api("/console/api/me");
  } catch (error) {
    sessionStorage.removeItem("factum-console-token");
    login.hidden = false;
    status(error.message);
    return;
  }
  document.getElementById("who").textContent =
    `${state.me.kind}:${state.me.actor}${state.me.operator ? " (operator)" : ""}`;
  window.addEventListener("hashchange", () => route().catch((error) => status(error.message)));
  await route().catch((error) => status(error.message));
}

start();
