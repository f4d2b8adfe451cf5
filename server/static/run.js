// A run's page: its status, the node tree updating live over the event stream, the
// timeline (a scrubber over its frames, its branches) and the buttons that change it.

import { followEvents, get, post, runPath } from "./api.js";
import { badge, dateTime, fill, h, json, notify, runHref, time } from "./dom.js";
import { nodeList, renderNodeDetail, renderTree } from "./tree.js";

const TERMINAL = new Set(["finished", "failed", "cancelled", "continued"]);
const TIMELINE_POLL_MS = 5000;
const MAX_EVENTS_SHOWN = 100;

function branchList(children) {
  if (!children || !children.length) return null;
  return h(
    "ul",
    { class: "branches" },
    children.map((c) =>
      h(
        "li",
        { dataset: { runId: c.runId, kind: c.kind } },
        h("span", { class: "tag" }, c.kind),
        " ",
        h("a", { href: runHref(c.runId) }, h("code", {}, c.runId)),
        " ",
        badge(c.status),
        c.parentFrameNo != null ? ` from frame ${c.parentFrameNo}` : "",
        c.branchLabel ? h("span", { class: "muted" }, ` “${c.branchLabel}”`) : null,
        branchList(c.children),
      ),
    ),
  );
}

/** Show run `runId` in `root`; returns a function that stops its stream and timers. */
export function runPage(root, runId) {
  const v = {
    run: null, // GET /v1/runs/{id}: the run now
    frameNo: null, // the frame shown, or null: live (the newest, states now)
    frameView: null, // GET state?frame=N of the frame shown
    liveTree: null, // the newest frame's tree, and its number
    liveTreeFrame: -1,
    node: null, // the open node's id
    following: false,
  };
  const abort = new AbortController();
  let stopped = false;
  let generation = 0;

  const status = h("span", { id: "run-status" });
  const meta = h("p", { class: "meta" });
  const runActions = h("div", { class: "actions" });
  const runError = h("div");
  const ticks = h("datalist", { id: "branch-ticks" });
  const scrub = h("input", { type: "range", id: "scrub", min: 0, max: 0, step: 1, value: 0, list: "branch-ticks", "aria-label": "Frame" });
  const frameLabel = h("span", { id: "frame-label" });
  const liveButton = h("button", { type: "button", id: "live", onclick: () => goLive() }, "Back to live");
  const frameActions = h(
    "div",
    { class: "actions" },
    h("button", { type: "button", id: "fork", onclick: () => fork() }, "Fork from this frame"),
    h("button", { type: "button", id: "replay", onclick: () => replay() }, "Replay from this frame"),
    h("button", { type: "button", id: "rewind", class: "danger", onclick: () => rewind() }, "Rewind to this frame"),
  );
  const lineage = h("div", { id: "lineage" });
  const branches = h("div", { id: "branches" });
  const tree = h("div", { id: "tree", class: "tree" });
  const detail = h("aside", { id: "node-detail", hidden: true });
  const events = h("ol", { id: "events", class: "events", reversed: true });
  const signalName = h("input", { placeholder: "signal name", required: true, size: 16 });
  const signalData = h("input", { placeholder: 'data JSON, e.g. {"ok": true}', size: 28 });
  const signalForm = h("form", { class: "inline", id: "signal" }, signalName, signalData, h("button", { type: "submit" }, "Send signal"));

  fill(
    root,
    h("p", {}, h("a", { href: "#/" }, "← Runs")),
    h("h1", {}, "Run ", h("code", {}, runId), " ", status),
    meta,
    runActions,
    runError,
    h(
      "section",
      { class: "timeline" },
      h("h2", {}, "Timeline"),
      h("div", { class: "scrubber" }, scrub, ticks, frameLabel, liveButton),
      frameActions,
      lineage,
      branches,
    ),
    h("div", { class: "columns" }, h("section", {}, h("h2", {}, "Nodes"), tree), detail),
    h("section", {}, h("h2", {}, "Signal"), signalForm),
    h("section", {}, h("h2", {}, "Events"), events),
  );

  const frames = () => (v.run && v.run.frames) || [];
  const shownFrameNo = () => (v.frameNo != null ? v.frameNo : frames().length ? frames()[frames().length - 1].frameNo : null);

  function renderHeader() {
    const run = v.run;
    fill(status, badge(run.status, { id: "run-status-badge" }));
    status.dataset.status = run.status;
    fill(
      meta,
      h("span", {}, "workflow ", h("strong", {}, run.workflowName || "?")),
      ` · started ${dateTime(run.createdAtMs)}`,
      run.finishedAtMs ? ` · ended ${dateTime(run.finishedAtMs)}` : "",
      ` · activation ${run.activation} · ${frames().length} frames · seq ${run.lastSeq}`,
      run.parentRunId
        ? [" · forked from ", h("a", { href: runHref(run.parentRunId) }, h("code", {}, run.parentRunId)), ` at frame ${run.parentFrameNo}`]
        : null,
    );
    const buttons = [];
    if (run.status !== "finished" && run.status !== "running") {
      buttons.push(h("button", { type: "button", id: "resume", onclick: () => resume() }, "Resume"));
    }
    if (!TERMINAL.has(run.status)) {
      buttons.push(h("button", { type: "button", id: "cancel", class: "danger", onclick: () => cancel() }, "Cancel run"));
    }
    fill(runActions, buttons);
    fill(runError, run.error ? h("div", { class: "error-box" }, h("strong", {}, "Run failed: "), `${run.error.name || "Error"}: ${run.error.message || ""}`, run.error.stack ? h("details", {}, h("summary", {}, "Traceback"), h("pre", { class: "stack" }, run.error.stack)) : null) : null);
  }

  function renderScrubber() {
    const list = frames();
    scrub.max = String(Math.max(0, list.length - 1));
    scrub.disabled = list.length === 0;
    if (v.frameNo == null) scrub.value = scrub.max;
    const shown = shownFrameNo();
    const frame = list.find((f) => f.frameNo === shown);
    frameLabel.dataset.frame = shown == null ? "" : String(shown);
    frameLabel.dataset.live = String(v.frameNo == null);
    fill(
      frameLabel,
      shown == null ? "No frames yet" : `Frame ${shown} of ${list[list.length - 1].frameNo}`,
      frame ? ` · ${time(frame.timestampMs)}` : "",
      v.frameNo == null ? h("span", { class: "badge st-running" }, "live") : h("span", { class: "badge st-waiting-resume" }, "past"),
    );
    liveButton.hidden = v.frameNo == null;
    for (const b of frameActions.querySelectorAll("button")) b.disabled = shown == null;
  }

  function renderNodes() {
    if (v.frameNo == null) {
      renderTree(tree, v.liveTree, v.run.nodes, v.node, openNode);
      tree.dataset.frame = v.liveTreeFrame >= 0 ? String(v.liveTreeFrame) : "";
      tree.dataset.live = "true";
    } else if (v.frameView) {
      renderTree(tree, v.frameView.tree, v.frameView.state.nodes, v.node, openNode);
      tree.dataset.frame = String(v.frameView.frameNo);
      tree.dataset.live = "false";
    }
  }

  async function renderDetail() {
    if (!v.node) {
      detail.hidden = true;
      return;
    }
    detail.hidden = false;
    const at = v.frameNo != null && v.frameView ? { frameNo: v.frameNo, records: nodeList(v.frameView.state.nodes).filter((n) => n.nodeId === v.node) } : null;
    const now = nodeList(v.run.nodes).filter((n) => n.nodeId === v.node);
    await renderNodeDetail(detail, runId, v.node, at, now, changed, () => openNode(null));
  }

  function openNode(nodeId) {
    v.node = nodeId;
    renderNodes();
    renderDetail();
  }

  /** Reload the run (and the newest frame's tree when it changed), then redraw. */
  async function loadRun() {
    const mine = ++generation;
    const run = await get(runPath(runId));
    if (stopped || mine !== generation) return;
    v.run = run;
    const list = frames();
    const last = list.length ? list[list.length - 1].frameNo : -1;
    if (v.frameNo == null && last !== v.liveTreeFrame) {
      try {
        const view = last >= 0 ? await get(runPath(runId, `/state?frame=${last}`)) : null;
        if (stopped || mine !== generation) return;
        v.liveTree = view ? view.tree : null;
        v.liveTreeFrame = last;
      } catch (e) {
        notify(String(e));
      }
    }
    if (v.frameNo != null && !list.some((f) => f.frameNo === v.frameNo)) v.frameNo = null; // rewound away
    renderHeader();
    renderScrubber();
    renderNodes();
  }

  async function loadTimeline() {
    try {
      const tl = await get(runPath(runId, "/timeline"));
      if (stopped) return;
      fill(
        lineage,
        tl.parentRunId ? h("p", {}, `A ${tl.kind} of `, h("a", { href: runHref(tl.parentRunId) }, h("code", {}, tl.parentRunId)), ` at frame ${tl.parentFrameNo}.`) : null,
        (tl.rewinds || []).length ? h("p", { class: "muted" }, `Rewound ${tl.rewinds.length} times: `, tl.rewinds.map((r) => h("code", {}, json(r, 120) + " "))) : null,
      );
      fill(branches, (tl.children || []).length ? [h("h3", {}, "Branches (forks and replays)"), branchList(tl.children)] : h("p", { class: "muted" }, "No forks or replays of this run."));
      const list = frames();
      fill(ticks, list.map((f, i) => ((tl.children || []).some((c) => c.parentFrameNo === f.frameNo) ? h("option", { value: i }) : null)));
    } catch (e) {
      fill(branches, h("p", { class: "error" }, String(e)));
    }
  }

  let frameGeneration = 0;
  async function showFrame(index) {
    const list = frames();
    if (!list.length) return;
    if (index >= list.length - 1) return goLive();
    const frameNo = list[index].frameNo;
    v.frameNo = frameNo;
    renderScrubber();
    const mine = ++frameGeneration;
    try {
      const view = await get(runPath(runId, `/state?frame=${frameNo}`));
      if (stopped || mine !== frameGeneration || v.frameNo !== frameNo) return;
      v.frameView = view;
      renderNodes();
      renderDetail();
    } catch (e) {
      notify(String(e));
    }
  }

  function goLive() {
    v.frameNo = null;
    v.frameView = null;
    v.liveTreeFrame = -1; // redraw the newest tree
    refresh();
  }

  let refreshTimer = null;
  let lastRefresh = 0;
  /** Reload soon (at most every 250 ms while events pour in). */
  function refresh() {
    if (refreshTimer) return;
    const wait = Math.max(0, 250 - (Date.now() - lastRefresh));
    refreshTimer = setTimeout(async () => {
      refreshTimer = null;
      lastRefresh = Date.now();
      try {
        await loadRun();
        if (v.node) await renderDetail();
      } catch (e) {
        if (!stopped) notify(String(e));
      }
    }, wait);
  }

  function onEvent(event) {
    const who = event.nodeId ? ` ${event.nodeId}${event.iteration ? "#" + event.iteration : ""}` : "";
    events.prepend(h("li", { value: event.seq }, h("span", { class: "muted" }, `${time(event.timestampMs)} `), h("strong", {}, event.type), who));
    while (events.childElementCount > MAX_EVENTS_SHOWN) events.lastElementChild.remove();
    refresh();
  }

  function follow() {
    if (v.following || stopped) return;
    v.following = true;
    const after = Math.max(0, ((v.run && v.run.lastSeq) || 0) - 30);
    followEvents(runId, after, onEvent, abort.signal, async () => {
      await loadRun();
      return !TERMINAL.has(v.run.status);
    }).finally(() => {
      v.following = false;
    });
  }

  /** After an action: reload everything and follow the stream again. */
  function changed() {
    loadRun().then(() => loadTimeline()).then(follow, (e) => notify(String(e)));
  }

  async function confirmed(message, call) {
    if (!window.confirm(message)) return null;
    try {
      return await call();
    } catch (e) {
      notify(String(e));
      return null;
    }
  }

  async function fork() {
    const frameNo = shownFrameNo();
    const child = await confirmed(`Fork run ${runId} at frame ${frameNo} and run the fork?`, async () => {
      const made = await post(runPath(runId, "/fork"), { frame: frameNo });
      await post(runPath(made.runId, "/resume"), {});
      return made;
    });
    if (child) window.location.hash = runHref(child.runId);
  }

  async function replay() {
    const frameNo = shownFrameNo();
    const child = await confirmed(`Replay run ${runId} from frame ${frameNo} (a new run)?`, () => post(runPath(runId, "/replay"), { frame: frameNo }));
    if (child) window.location.hash = runHref(child.runId);
  }

  async function rewind() {
    const frameNo = shownFrameNo();
    const done = await confirmed(
      `Rewind run ${runId} to frame ${frameNo}? The frames after it are discarded; resume the run to go on.`,
      () => post(runPath(runId, "/rewind"), { frame: frameNo }),
    );
    if (done) {
      notify(`Rewound to frame ${frameNo}; Resume runs it from there.`, "info");
      goLive();
      changed();
    }
  }

  async function resume() {
    try {
      await post(runPath(runId, "/resume"), {});
    } catch (e) {
      notify(String(e));
    }
    changed();
  }

  async function cancel() {
    if (await confirmed(`Cancel run ${runId}? Its running tasks are stopped.`, () => post(runPath(runId, "/cancel"), { reason: "cancelled from the web page" }))) {
      changed();
    }
  }

  signalForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    let data = null;
    if (signalData.value.trim()) {
      try {
        data = JSON.parse(signalData.value);
      } catch (e) {
        notify(`Error [INVALID_JSON]: the signal data is not JSON (${e.message}). Fix it and send again.`);
        return;
      }
    }
    try {
      await post(runPath(runId, "/signals/" + encodeURIComponent(signalName.value.trim())), { data });
      notify(`Signal ${signalName.value.trim()} sent.`, "info");
    } catch (e) {
      notify(String(e));
    }
    changed();
  });

  scrub.addEventListener("input", () => showFrame(Number(scrub.value)));

  const timelineTimer = setInterval(() => {
    if (!document.hidden) loadTimeline();
  }, TIMELINE_POLL_MS);
  loadRun().then(
    () => {
      loadTimeline();
      follow();
    },
    (e) => fill(root, h("p", { class: "error" }, String(e)), h("p", {}, h("a", { href: "#/" }, "← Runs"))),
  );

  return () => {
    stopped = true;
    abort.abort();
    clearInterval(timelineTimer);
    clearTimeout(refreshTimer);
  };
}
