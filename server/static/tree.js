// The node tree of a run (at a frame, or now) and one node's detail panel.

import { get, post, runPath } from "./api.js";
import { badge, duration, fill, h, json, notify, time } from "./dom.js";

/** The node records of a run state: a list (an empty one may come as `{}`). */
export function nodeList(nodes) {
  if (Array.isArray(nodes)) return nodes;
  return nodes && typeof nodes === "object" ? Object.values(nodes) : [];
}

/** Group node records by node id: Map id -> records, lowest iteration first. */
function byNode(nodes) {
  const map = new Map();
  for (const node of nodeList(nodes)) {
    if (!map.has(node.nodeId)) map.set(node.nodeId, []);
    map.get(node.nodeId).push(node);
  }
  for (const list of map.values()) list.sort((a, b) => a.iteration - b.iteration);
  return map;
}

function nodeRow(id, tag, records, selected, onSelect) {
  const latest = records && records.length ? records[records.length - 1] : null;
  const state = latest ? latest.state : "none";
  const output = latest && latest.hasOutput ? h("code", { class: "output" }, json(latest.output, 80)) : null;
  const iterations = records && records.length > 1 ? h("span", { class: "muted" }, `${records.length} iterations`) : null;
  return h(
    "div",
    {
      class: "node" + (id === selected ? " selected" : ""),
      dataset: { nodeId: id, state },
    },
    h("button", { type: "button", class: "link", onclick: () => onSelect(id) }, id),
    tag ? h("span", { class: "tag" }, tag) : null,
    badge(state),
    iterations,
    output,
  );
}

/**
 * Render `tree` (the frame's element tree: {tag, id?, children?}) in `container`, with
 * each node's state from `nodes` (node records). Nodes missing from the tree are listed
 * after it. `onSelect(nodeId)` opens a node; `selected` is the open one.
 */
export function renderTree(container, tree, nodes, selected, onSelect) {
  const records = byNode(nodes);
  const shown = new Set();
  function item(el) {
    if (!el || typeof el !== "object") return null;
    const children = Array.isArray(el.children) ? el.children : [];
    const id = typeof el.id === "string" ? el.id : null;
    let head;
    if (id !== null) {
      shown.add(id);
      head = nodeRow(id, el.tag, records.get(id), selected, onSelect);
    } else {
      head = h("div", { class: "group" }, h("span", { class: "tag" }, String(el.tag || "node")));
    }
    const list = children.length ? h("ul", {}, children.map((c) => h("li", {}, item(c)))) : null;
    return [head, list];
  }
  const top = tree ? h("ul", { class: "root" }, h("li", {}, item(tree))) : null;
  const rest = [...records.keys()].filter((id) => !shown.has(id));
  fill(
    container,
    top,
    rest.length ? h("p", { class: "muted" }, tree ? "Other nodes:" : "Nodes:") : null,
    rest.length ? h("ul", { class: "root" }, rest.map((id) => h("li", {}, nodeRow(id, null, records.get(id), selected, onSelect)))) : null,
    !top && !rest.length ? h("p", { class: "muted" }, "No nodes yet.") : null,
  );
}

function errorBox(error) {
  if (!error) return null;
  const where = error.file ? ` (${error.file}:${error.line}${error.function ? " in " + error.function : ""})` : "";
  return h(
    "div",
    { class: "error-box" },
    h("strong", {}, `${error.name || "Error"}${error.code ? " [" + error.code + "]" : ""}: `),
    error.message || "",
    h("span", { class: "muted" }, where),
    error.stack ? h("details", {}, h("summary", {}, "Traceback"), h("pre", { class: "stack" }, error.stack)) : null,
    error.cause ? h("div", { class: "cause" }, "Caused by: ", errorBox(error.cause)) : null,
  );
}

function attemptsTable(attempts) {
  if (!attempts.length) return h("p", { class: "muted" }, "No attempts.");
  return h(
    "table",
    { class: "attempts" },
    h("thead", {}, h("tr", {}, ["#", "State", "Started", "Duration", "Error / heartbeats"].map((t) => h("th", {}, t)))),
    h(
      "tbody",
      {},
      attempts.map((a) =>
        h(
          "tr",
          {},
          h("td", {}, a.attempt),
          h("td", {}, badge(a.state)),
          h("td", {}, time(a.startedAtMs)),
          h("td", {}, duration(a.durationMs)),
          h(
            "td",
            {},
            errorBox(a.error),
            a.cancelReason ? h("span", { class: "muted" }, `cancelled: ${a.cancelReason}`) : null,
            (a.heartbeats || []).length
              ? h(
                  "details",
                  {},
                  h("summary", {}, `${a.heartbeats.length} heartbeats`),
                  h("ul", { class: "beats" }, a.heartbeats.map((b) => h("li", {}, `${time(b.timestampMs)} `, h("code", {}, json(b.data, 200))))),
                )
              : null,
          ),
        ),
      ),
    ),
  );
}

async function act(label, message, call, after) {
  if (message && !window.confirm(message)) return;
  try {
    await call();
    notify(`${label}: done.`, "info");
  } catch (e) {
    notify(String(e));
  }
  after();
}

/**
 * Render node `nodeId` of run `runId` in `container`: its iterations, attempts (errors
 * with tracebacks, heartbeats), outputs, and buttons (retry; approve/deny when waiting).
 * `at` is {frameNo, records} when the page shows a past frame (else null); `now` is the
 * node's current records (with their approval requests); `changed()` runs after an action.
 */
export async function renderNodeDetail(container, runId, nodeId, at, now, changed, close) {
  let detail;
  try {
    detail = await get(runPath(runId, "/nodes/" + encodeURIComponent(nodeId)));
  } catch (e) {
    fill(container, h("h2", {}, nodeId), h("p", { class: "error" }, String(e)));
    return;
  }
  const waiting = nodeList(now).filter((n) => n.state === "waiting-approval");
  const note = h("input", { placeholder: "note (optional)", size: 18 });
  const path = runPath(runId, "/nodes/" + encodeURIComponent(nodeId));
  const decide = (what, iteration) => () => post(`${path}/${what}`, { iteration, note: note.value || undefined });
  const buttons = [
    h(
      "button",
      {
        type: "button",
        id: "retry-task",
        onclick: () =>
          act("Retry", `Retry task ${nodeId} of run ${runId}? Its later work is run again.`, () => post(runPath(runId, "/retry-task"), { nodeId }), changed),
      },
      "Retry task",
    ),
  ];
  for (const n of waiting) {
    const request = n.approval || {};
    buttons.push(
      h("span", { class: "approval" }, request.title || "Approval", request.summary ? ` — ${request.summary}` : ""),
      note,
      h("button", { type: "button", id: "approve", onclick: () => act("Approve", null, decide("approve", n.iteration), changed) }, "Approve"),
      h("button", { type: "button", id: "deny", class: "danger", onclick: () => act("Deny", `Deny ${nodeId} of run ${runId}?`, decide("deny", n.iteration), changed) }, "Deny"),
    );
  }
  const past = at
    ? h(
        "div",
        { class: "at-frame" },
        h("h3", {}, `At frame ${at.frameNo}`),
        (at.records || []).length
          ? at.records.map((r) =>
              h(
                "p",
                {},
                `iteration ${r.iteration}: `,
                badge(r.state),
                r.hasOutput ? h("pre", { class: "output" }, json(r.output)) : null,
                (r.attempts || []).map((a) => errorBox(a.error)),
              ),
            )
          : h("p", { class: "muted" }, "Not mounted yet at this frame."),
      )
    : null;
  fill(
    container,
    h("h2", {}, h("code", {}, nodeId), " ", h("button", { type: "button", class: "quiet", onclick: close }, "close")),
    h("div", { class: "actions" }, buttons),
    past,
    h("h3", {}, at ? "Now" : "Iterations"),
    detail.iterations.map((it) =>
      h(
        "section",
        { class: "iteration", dataset: { iteration: it.iteration } },
        h("h4", {}, `Iteration ${it.iteration} `, badge(it.state), " ", h("span", { class: "muted" }, duration(it.durationMs))),
        it.skipReason ? h("p", { class: "muted" }, `skipped: ${it.skipReason}`) : null,
        it.hasOutput ? [h("div", { class: "label" }, "Output"), h("pre", { class: "output" }, json(it.output))] : null,
        attemptsTable(it.attempts || []),
      ),
    ),
  );
}
