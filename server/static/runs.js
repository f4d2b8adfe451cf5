// The runs list: status filters, polled every 2 s; and a form to start a run.

import { get, post } from "./api.js";
import { badge, dateTime, fill, h, notify, runHref } from "./dom.js";

const POLL_MS = 2000;

const FILTERS = [
  ["", "all"],
  ["running", "running"],
  ["waiting-approval", "waiting approval"],
  ["waiting-event", "waiting event"],
  ["waiting-timer", "waiting timer"],
  ["waiting-resume", "waiting resume"],
  ["pending", "pending"],
  ["finished", "finished"],
  ["failed", "failed"],
  ["cancelled", "cancelled"],
];

let chosen = ""; // the status filter, kept while the page is open

function startForm() {
  const path = h("input", { name: "workflowPath", placeholder: "workflow file under --root, e.g. hello.py", required: true, size: 36 });
  const input = h("input", { name: "input", placeholder: 'input JSON, e.g. {"name": "Ada"}', size: 28 });
  const form = h(
    "form",
    { class: "inline", id: "start-run" },
    path,
    input,
    h("button", { type: "submit" }, "Start run"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = { workflowPath: path.value.trim() };
    if (input.value.trim()) {
      try {
        body.input = JSON.parse(input.value);
      } catch (e) {
        notify(`Error [INVALID_JSON]: the input is not JSON (${e.message}). Fix it and start again.`);
        return;
      }
    }
    try {
      const started = await post("/v1/runs", body);
      window.location.hash = runHref(started.runId);
    } catch (e) {
      notify(String(e));
    }
  });
  return form;
}

/** Show the runs list in `root`; returns a function that stops its polling. */
export function runsPage(root) {
  const table = h("tbody");
  const status = h("p", { class: "muted" });
  const buttons = FILTERS.map(([value, label]) =>
    h(
      "button",
      {
        type: "button",
        class: "filter",
        dataset: { status: value },
        "aria-pressed": String(value === chosen),
        onclick: () => {
          chosen = value;
          for (const b of buttons) b.setAttribute("aria-pressed", String(b.dataset.status === chosen));
          refresh();
        },
      },
      label,
    ),
  );
  fill(
    root,
    h("h1", {}, "Runs"),
    startForm(),
    h("div", { class: "filters", role: "group", "aria-label": "Status" }, buttons),
    h(
      "table",
      { class: "runs" },
      h("thead", {}, h("tr", {}, ["Run", "Workflow", "Status", "Started", "Updated"].map((t) => h("th", {}, t)))),
      table,
    ),
    status,
  );

  let stopped = false;
  let timer = null;
  let generation = 0; // a filter click while a poll is out: only the newest answer counts
  async function refresh() {
    clearTimeout(timer);
    const mine = ++generation;
    const query = chosen ? `?limit=200&status=${encodeURIComponent(chosen)}` : "?limit=200";
    try {
      const page = await get("/v1/runs" + query);
      if (stopped || mine !== generation) return;
      fill(
        table,
        page.runs.map((run) =>
          h(
            "tr",
            { dataset: { runId: run.runId } },
            h("td", {}, h("a", { href: runHref(run.runId) }, h("code", {}, run.runId))),
            h("td", {}, run.workflowName),
            h("td", {}, badge(run.status)),
            h("td", {}, dateTime(run.createdAtMs)),
            h("td", {}, dateTime(run.updatedAtMs)),
          ),
        ),
      );
      const more = page.nextOffset != null ? " (the newest 200)" : "";
      fill(status, page.runs.length ? `${page.runs.length} runs${more}; updated every 2 s.` : "No runs.");
    } catch (e) {
      if (stopped || mine !== generation) return;
      fill(status, h("span", { class: "error" }, String(e)));
    }
    if (!stopped) timer = setTimeout(refresh, POLL_MS);
  }
  refresh();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
