// Building DOM nodes without HTML strings: every value from the API goes in as text
// (`append` of a string makes a text node; attributes are set with setAttribute).

/** Return a new element `tag` with `attrs` (on* functions become listeners) and children. */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      el.addEventListener(key.slice(2), value);
    } else if (key === "class") {
      el.className = value;
    } else if (key === "dataset") {
      for (const [k, v] of Object.entries(value)) el.dataset[k] = String(v);
    } else {
      el.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Append `children` (nodes, strings, numbers, nested arrays; null skipped) to `el`. */
export function append(el, children) {
  for (const child of [children].flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

/** Replace the children of `el` with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A status or state badge; the class is built from letters and dashes only. */
export function badge(state, attrs = {}) {
  const text = state == null ? "unknown" : String(state);
  const cls = "badge st-" + text.toLowerCase().replace(/[^a-z-]/g, "");
  return h("span", { ...attrs, class: cls, dataset: { state: text } }, text);
}

/** Local time of epoch milliseconds, with milliseconds ("14:03:07.120"), or "". */
export function time(ms) {
  if (ms == null) return "";
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** Date and time of epoch milliseconds ("2026-11-30 14:03:07"), or "". */
export function dateTime(ms) {
  if (ms == null) return "";
  const d = new Date(ms);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** A duration in milliseconds as "850 ms", "4.2 s" or "3 min 5 s". */
export function duration(ms) {
  if (ms == null) return "";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} min ${Math.round((ms % 60000) / 1000)} s`;
}

/** JSON of `value`, indented; `limit` characters at most (then "…"). */
export function json(value, limit = 0) {
  let text = JSON.stringify(value, null, limit ? 0 : 2);
  if (text === undefined) text = String(value);
  return limit && text.length > limit ? text.slice(0, limit) + "…" : text;
}

/** Show `message` in the notice bar (kind "error" or "info"); empty hides it. */
export function notify(message, kind = "error") {
  const bar = document.getElementById("notice");
  if (!message) {
    bar.hidden = true;
    return;
  }
  bar.className = kind;
  fill(bar, message, " ", h("button", { type: "button", class: "quiet", onclick: () => notify("") }, "×"));
  bar.hidden = false;
}

/** The href of a run's page. */
export function runHref(runId) {
  return "#/runs/" + encodeURIComponent(runId);
}
