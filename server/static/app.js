// The page's entry: a hash router between the runs list (#/) and a run (#/runs/<id>).

import { askToken } from "./api.js";
import { fill, h, notify } from "./dom.js";
import { runPage } from "./run.js";
import { runsPage } from "./runs.js";

let dispose = () => {};

function route() {
  dispose();
  notify("");
  const root = document.getElementById("app");
  const match = /^#\/runs\/([^/?#]+)/.exec(window.location.hash);
  try {
    dispose = match ? runPage(root, decodeURIComponent(match[1])) : runsPage(root);
  } catch (e) {
    dispose = () => {};
    fill(root, h("p", { class: "error" }, String(e)));
  }
}

document.getElementById("sign-in").addEventListener("click", async () => {
  if (await askToken(true)) route();
});
window.addEventListener("hashchange", route);
route();
