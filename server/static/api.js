// The /v1 API from the browser: JSON requests with the auth token, and a run's event
// stream read with fetch streaming.
//
// The token: when a request gets 401, the page asks for it once (window.prompt), keeps
// it in sessionStorage (this tab only, gone when it closes) and sends it as
// `Authorization: Bearer`. The event stream is read with fetch rather than EventSource,
// because EventSource cannot send a header: so the token never goes in a URL (where
// access logs and browser history would keep it). The page never logs it.

const TOKEN_KEY = "smithers.token";
let asking = null; // the prompt being shown, shared by requests that got 401 together
let declined = false; // the user cancelled the prompt: ask again only on "Enter token"

/** An error answered by the API: `{error: {code, message, details?}}` and its status. */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }

  toString() {
    return `Error [${this.code}]: ${this.message}`;
  }
}

function authHeaders(extra = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { ...extra, Authorization: "Bearer " + token } : { ...extra };
}

function showSignIn(show) {
  const button = document.getElementById("sign-in");
  if (button) button.hidden = !show;
}

/** Ask for the token (one prompt however many requests wait); true if one was given. */
export function askToken(force = false) {
  if (declined && !force) return Promise.resolve(false);
  if (!asking) {
    asking = new Promise((resolve) => {
      // A prompt blocks the page; let the requests that got 401 in the same tick share it.
      setTimeout(() => {
        const given = window.prompt("This Smithers server needs its auth token (kept in this tab only):");
        const token = (given || "").trim();
        if (token) sessionStorage.setItem(TOKEN_KEY, token);
        declined = !token;
        showSignIn(!token);
        asking = null;
        resolve(Boolean(token));
      }, 0);
    });
  }
  return asking;
}

function refused() {
  // The stored token was refused: forget it, and wait for "Enter token".
  sessionStorage.removeItem(TOKEN_KEY);
  declined = true;
  showSignIn(true);
}

/** Call `method path` with the JSON `body`; return the JSON answer, or throw `ApiError`. */
export async function api(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    const init = { method, headers: authHeaders({ Accept: "application/json" }) };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (e) {
      throw new ApiError(0, "NETWORK", `The server did not answer (${e.message}). Is smithers serve running?`);
    }
    if (response.status === 401) {
      if (attempt === 0 && (await askToken())) continue;
      if (attempt > 0) refused();
    }
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new ApiError(
        response.status,
        error.code || `HTTP_${response.status}`,
        error.message || response.statusText,
        error.details,
      );
    }
    return data;
  }
}

/** `api("GET", path)`. */
export const get = (path) => api("GET", path);
/** `api("POST", path, body)`. */
export const post = (path, body = {}) => api("POST", path, body);

/** The API path of run `runId` plus `rest`. */
export function runPath(runId, rest = "") {
  return "/v1/runs/" + encodeURIComponent(runId) + rest;
}

const sleep = (ms, signal) =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        resolve();
      },
      { once: true },
    );
  });

/** Split SSE text into messages: returns [messages, rest]; each {event, id, data}. */
function parseMessages(buffer) {
  const messages = [];
  const boundary = /\r\n\r\n|\n\n|\r\r/;
  let match;
  while ((match = boundary.exec(buffer))) {
    const block = buffer.slice(0, match.index);
    buffer = buffer.slice(match.index + match[0].length);
    const message = { event: "message", id: null, data: [] };
    for (const line of block.split(/\r\n|\r|\n/)) {
      if (!line || line.startsWith(":")) continue; // keep-alive comment
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") message.event = value;
      else if (field === "id") message.id = value;
      else if (field === "data") message.data.push(value);
    }
    if (message.data.length) messages.push({ ...message, data: message.data.join("\n") });
  }
  return [messages, buffer];
}

/**
 * Follow run `runId`'s events (SSE event `smithers`) after seq `afterSeq` until `signal`
 * aborts. Calls `onEvent(event)` for each (seq order, none twice). When the server closes
 * the stream (the run ended) it asks `again()`: reconnect (resuming after the last seq)
 * while it answers true, else stop. A lost connection is retried after 2 s.
 */
export async function followEvents(runId, afterSeq, onEvent, signal, again = () => false) {
  let last = afterSeq;
  while (!signal.aborted) {
    let response;
    try {
      const headers = authHeaders({ Accept: "text/event-stream" });
      if (last > 0) headers["Last-Event-ID"] = String(last);
      response = await fetch(runPath(runId, `/events?afterSeq=${last}`), { headers, signal });
    } catch (e) {
      if (signal.aborted) return;
      await sleep(2000, signal);
      continue;
    }
    if (response.status === 401) {
      if (await askToken()) continue;
      return;
    }
    if (!response.ok) {
      if (response.status === 404) return;
      await sleep(2000, signal);
      continue;
    }
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        let messages;
        [messages, buffer] = parseMessages(buffer + value);
        for (const message of messages) {
          if (message.event !== "smithers") continue;
          const seq = Number(message.id);
          if (Number.isInteger(seq) && seq <= last) continue;
          if (Number.isInteger(seq)) last = seq;
          try {
            onEvent(JSON.parse(message.data));
          } catch (e) {
            console.error("smithers: could not show an event", e);
          }
        }
      }
    } catch (e) {
      if (signal.aborted) return;
      await sleep(2000, signal);
      continue;
    }
    if (signal.aborted || !(await again())) return;
    await sleep(500, signal);
  }
}
