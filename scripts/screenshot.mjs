// Screenshots of a running demo (`make demo`) for the README, taken with Debian's headless Chromium.
//
// How to run (node_modules stay OUTSIDE the repository; no `npx playwright install` needed):
//   apt-get install -y chromium fonts-noto-cjk fonts-noto-color-emoji   # Debian's Chromium; without the
//                                                    # CJK font every Chinese character renders as a box
//   mkdir -p /tmp/shot && (cd /tmp/shot && npm init -y && npm install playwright-core@1)
//   make demo &   # or: python -m lasl_backend.devtools.demo; prints URL, login and API token; wait for training
//   LS_URL=http://127.0.0.1:8080 LS_USER=demo@example.com LS_PASS=<password> LS_TOKEN=<token> \
//     NODE_PATH=/tmp/shot/node_modules node scripts/screenshot.mjs
//
// Optional: PROJECT (default 1), OUT_DIR (default docs), CHROMIUM (default /usr/bin/chromium),
// WAIT_MS (extra settle time per page, default 4000).
//
// What it does:
//  1. Waits until the project's model_version is a trained version (not the backend title or the
//     cold-start version) and the unlabeled tasks hold predictions of it.
//  2. Logs in through the real login form (Label Studio needs a session cookie for its UI).
//  3. docs/screenshot-editor.png: opens the task with the LOWEST current-version prediction score
//     that has at least one region (right after a run: the task "Uncertainty sampling" serves next)
//     in the labeling editor, showing the model's pre-annotations.
//  4. docs/screenshot-queue.png: creates a Data Manager tab sorted by "Prediction score" (ascending)
//     with that column visible, and captures it.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(path.join(process.env.NODE_PATH || "/tmp/shot/node_modules", "noop.js"));
const { chromium } = require("playwright-core");

const LS = (process.env.LS_URL || "http://127.0.0.1:8080").replace(/\/$/, "");
const USER = process.env.LS_USER || "demo@example.com";
const PASS = process.env.LS_PASS;
const TOKEN = process.env.LS_TOKEN;
const PROJECT = Number(process.env.PROJECT || 1);
const OUT = process.env.OUT_DIR || "docs";
const WAIT_MS = Number(process.env.WAIT_MS || 4000);
if (!PASS || !TOKEN) {
  console.error("set LS_PASS and LS_TOKEN (the demo prints both)");
  process.exit(2);
}

async function api(p, init = {}) {
  const r = await fetch(`${LS}${p}`, {
    ...init,
    headers: { Authorization: `Token ${TOKEN}`, "Content-Type": "application/json", ...(init.headers || {}) },
  });
  if (!r.ok) throw new Error(`${init.method || "GET"} ${p} -> ${r.status} ${await r.text()}`);
  return r.json();
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// 1. wait for a trained version whose predictions are in Label Studio
let project, preds;
for (let i = 0; ; i++) {
  project = await api(`/api/projects/${PROJECT}`);
  const mv = project.model_version || "";
  if (mv.startsWith("lasl-v")) {
    preds = (await api(`/api/predictions?project=${PROJECT}`)).filter((p) => p.model_version === mv);
    if (preds.length) break;
  }
  if (i > 180) throw new Error(`no trained model_version after 15 min (project.model_version=${mv})`);
  if (i % 6 === 0) console.log(`waiting for training (project.model_version=${JSON.stringify(mv)})`);
  await sleep(5000);
}
preds.sort((a, b) => a.score - b.score);
const best = preds.find((p) => (p.result || []).length > 0) || preds[0];
console.log(`model_version ${project.model_version}, sampling ${JSON.stringify(project.sampling)}, ` +
  `${preds.length} predictions; editor task ${best.task} (score ${best.score}, ${best.result.length} regions)`);

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  // playwright passes its own fresh --user-data-dir; the rest are the flags that work here as root
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await (await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: "en-US" })).newPage();

  // 2. log in
  await page.goto(`${LS}/user/login/`, { waitUntil: "domcontentloaded" });
  await page.fill('input[name="email"]', USER);
  await page.fill('input[name="password"]', PASS);
  await Promise.all([page.waitForNavigation({ waitUntil: "domcontentloaded" }), page.click('button[type="submit"], input[type="submit"]')]);
  if (page.url().includes("/user/login")) throw new Error("login failed");

  // 3. the editor on the task the queue serves next, with its pre-annotations
  await page.goto(`${LS}/projects/${PROJECT}/data?task=${best.task}`, { waitUntil: "domcontentloaded" });
  // regions of a Text tag are <span class="htx-highlight ..."> inside the text; wait until they render
  await page.waitForSelector(".htx-highlight", { timeout: 120000 });
  await sleep(WAIT_MS);
  const n = await page.locator(".htx-highlight").count();
  console.log(`editor: ${n} highlighted region spans`);
  await page.screenshot({ path: path.join(OUT, "screenshot-editor.png") });

  // 4. Data Manager tab sorted by prediction score, ascending (lowest = labelled first)
  const cols = (await api(`/api/dm/columns?project=${PROJECT}`)).columns.filter((c) => !c.parent && !c.children);
  const shown = new Set(["id", "total_annotations", "total_predictions", "predictions_score", "predictions_model_versions"]);
  const hidden = cols.filter((c) => !shown.has(c.id)).map((c) => `tasks:${c.id}`);
  // reuse-safe: drop a tab of the same title left by an earlier run
  for (const v of await api(`/api/dm/views?project=${PROJECT}`)) {
    if (v.data && v.data.title === "Queue by score") {
      await fetch(`${LS}/api/dm/views/${v.id}`, { method: "DELETE", headers: { Authorization: `Token ${TOKEN}` } });
    }
  }
  const view = await api(`/api/dm/views`, {
    method: "POST",
    body: JSON.stringify({
      project: PROJECT,
      data: {
        title: "Queue by score",
        ordering: ["tasks:predictions_score"],
        hiddenColumns: { explore: hidden, labeling: hidden },
        filters: { conjunction: "and", items: [] },
      },
    }),
  });
  await page.goto(`${LS}/projects/${PROJECT}/data?tab=${view.id}`, { waitUntil: "domcontentloaded" });
  await page.waitForSelector("text=Prediction score", { timeout: 120000 });
  await sleep(WAIT_MS);
  await page.screenshot({ path: path.join(OUT, "screenshot-queue.png") });
  console.log(`wrote ${OUT}/screenshot-editor.png and ${OUT}/screenshot-queue.png`);
} finally {
  await browser.close();
}
