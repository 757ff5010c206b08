// Cross-site request forgery in a real browser. Two phases, run one at a time by
// tests/integration/browser.rs, which checks the database and the files between them:
//   hostile: the victim has weir open (so the browser holds weir's CSRF cookie), then visits pages
//            served by a SECOND local HTTP server (another port: another origin, same site), each
//            of which auto-submits one of weir's forms: trigger (with a param that would `touch` a
//            file), pause, set a variable, add a connection, clear a run, clear a task, mark a
//            task. Each is tried twice: as is (the browser adds the victim's cookie), and after
//            tossing a cookie of the attacker's own token onto weir's host (cookies ignore ports)
//            with that token in the form. Every attempt must be answered 403 by weir.
//            A site whose DNS name points at 127.0.0.1 (rebinding) must get no weir page at all.
//   own:     the same actions from weir's own pages, by clicking, must work.
// Both phases fail on any Content-Security-Policy violation reported by Chromium.
// Usage: node csrf_check.mjs <hostile|own> <weir_base_url> <dag_id> <run_id> <marker_dir> <screenshot_dir>
import { mkdirSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [phase, weir, dagId, runId, markerDir, screenshotDir] = process.argv.slice(2);
if (!["hostile", "own"].includes(phase) || !screenshotDir) {
  console.error("usage: node csrf_check.mjs <hostile|own> <weir_base_url> <dag_id> <run_id> <marker_dir> <screenshot_dir>");
  process.exit(2);
}
mkdirSync(screenshotDir, { recursive: true });

const RUN_DEADLINE_MS = 60_000;
const ATTACKER_TOKEN = "a77ac4e7".repeat(8);
const runUrl = `/dags/${dagId}/runs/${encodeURIComponent(runId)}`;
const taskUrl = (task) => `${runUrl}/tasks/${task}`;

// What each forged form posts: [name, weir path, fields].
const ATTACKS = [
  ["trigger", `/dags/${dagId}/trigger`, { "param:file": join(markerDir, "hostile_trigger"), run_id: "hostile" }],
  ["pause", `/dags/${dagId}/pause`, { paused: "true", next: "/" }],
  ["variable", "/variables", { key: "hostile_variable", value: "x" }],
  ["connection", "/connections", { conn_id: "hostile_connection", url: "postgres://u:p@evil.example/d" }],
  ["clear-run", `${runUrl}/clear`, { which: "all" }],
  ["clear-task", `${taskUrl("touch")}/clear`, { downstream: "true" }],
  ["mark-task", `${taskUrl("done")}/mark`, { state: "failed" }],
];

const step = (text) => console.log(`csrf_check ${phase}: ${text}`);
const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// Logs in when the deployment under test asks for it (WEIR_UI_USER / WEIR_UI_PASSWORD).
async function logIn(page) {
  const user = process.env.WEIR_UI_USER;
  if (!user) return;
  await page.goto(`${weir}/login`);
  await page.locator('input[name="username"]').fill(user);
  await page.locator('input[name="password"]').fill(process.env.WEIR_UI_PASSWORD || "");
  await Promise.all([page.waitForURL((url) => !url.pathname.startsWith("/login")), page.locator('form [type="submit"]').first().click()]);
}

// The hostile page for one attack: a form aimed at weir, submitted as soon as the page loads.
function attackPage(path, fields, tossCookie) {
  const inputs = Object.entries(fields)
    .map(([name, value]) => `<input type="hidden" name="${escapeHtml(name)}" value="${escapeHtml(value)}">`)
    .join("");
  const toss = tossCookie
    ? `for (const path of ["/", "/dags", "/variables", "/connections"]) document.cookie = "weir_csrf=${ATTACKER_TOKEN}; path=" + path;`
    : "";
  const token = tossCookie ? `<input type="hidden" name="csrf_token" value="${ATTACKER_TOKEN}">` : "";
  return `<!doctype html><title>Cute cats</title><h1>Cute cats</h1>
<form id="f" method="post" action="${escapeHtml(weir + path)}">${inputs}${token}</form>
<script>${toss} document.getElementById("f").submit();</script>`;
}

function startHostileServer() {
  const server = createServer((request, response) => {
    const url = new URL(request.url, "http://localhost");
    const attack = ATTACKS.find(([name]) => name === url.searchParams.get("attack"));
    if (!attack) { response.writeHead(404); response.end("no such attack"); return; }
    response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    response.end(attackPage(attack[1], attack[2], url.searchParams.get("toss") === "1"));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // rebound.test resolves to 127.0.0.1, as a hostile site's name would after DNS rebinding.
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--host-resolver-rules=MAP rebound.test 127.0.0.1"],
});
const problems = [];
let hostile = null;
try {
  const context = await browser.newContext({ viewport: { width: 1366, height: 860 } });
  const page = await context.newPage();
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    const text = message.text();
    if (/Content Security Policy|Refused to (apply|execute|load|connect|frame)/i.test(text)) problems.push(`CSP violation: ${text}`);
  });
  const shot = (name) => page.screenshot({ path: join(screenshotDir, `csrf-${phase}-${name}.png`), fullPage: true });

  await logIn(page);
  step("the victim has weir open");
  const first = await page.goto(`${weir}/dags/${dagId}`);
  const csp = first.headers()["content-security-policy"] || "";
  if (!csp.includes("script-src 'self'") || !csp.includes("frame-ancestors 'none'")) throw new Error(`weir's page has no CSP: ${csp}`);
  const cookies = await context.cookies(weir);
  const csrfCookie = cookies.find((cookie) => cookie.name === "weir_csrf");
  if (!csrfCookie || !csrfCookie.httpOnly || csrfCookie.sameSite !== "Strict") {
    throw new Error(`weir did not set an HttpOnly SameSite=Strict weir_csrf cookie: ${JSON.stringify(cookies)}`);
  }

  if (phase === "hostile") {
    hostile = await startHostileServer();
    const attacker = `http://127.0.0.1:${hostile.address().port}`;
    step(`attacker pages at ${attacker}`);
    for (const [name, path] of ATTACKS) {
      for (const toss of ["0", "1"]) {
        const answered = page.waitForResponse((response) => response.request().method() === "POST" && response.url() === weir + path);
        await page.goto(`${attacker}/?attack=${name}&toss=${toss}`);
        const response = await answered;
        if (response.status() !== 403) throw new Error(`forged ${name} (toss=${toss}) was answered ${response.status()}, not 403`);
        await page.waitForURL(weir + path);
        await page.getByText("changed nothing").waitFor();
        step(`forged ${name}${toss === "1" ? " with a tossed cookie" : ""}: refused`);
      }
    }
    await shot("refused");

    step("a site whose name was rebound to 127.0.0.1 gets no weir page");
    const rebound = new URL(weir);
    rebound.hostname = "rebound.test";
    const answer = await page.goto(`${rebound.origin}/variables`);
    if (answer.status() !== 421) throw new Error(`weir answered ${answer.status()} to a rebound host name, not 421`);
  } else {
    const waitForRun = async (what) => {
      await page.waitForFunction(() => document.querySelector("#run-head h1 .badge.state-success"), null,
        { timeout: RUN_DEADLINE_MS, polling: 250 });
      step(`${what}: the run succeeded`);
    };

    step("trigger from the DAG page");
    await page.goto(`${weir}/dags/${dagId}?tab=trigger`);
    await page.locator("#param-file").fill(join(markerDir, "own_trigger"));
    await page.locator("#run-id").fill("own");
    await page.locator("#trigger-submit").click();
    await page.waitForURL(/tab=grid/);
    await page.goto(`${weir}/dags/${dagId}/runs/own`);
    await waitForRun("trigger");
    await shot("triggered");

    step("clear the run from its page");
    await page.goto(weir + runUrl);
    await page.getByRole("button", { name: "Clear all tasks" }).click();
    await page.getByText("Cleared").first().waitFor();
    await waitForRun("clear run");

    step("clear a task with its downstream from its page");
    await page.goto(weir + taskUrl("touch"));
    await page.getByRole("button", { name: "Clear with downstream" }).click();
    await page.getByText("Cleared").first().waitFor();
    await page.goto(weir + runUrl);
    await waitForRun("clear task");

    step("mark a task failed from its page");
    await page.goto(weir + taskUrl("done"));
    await page.getByRole("button", { name: "Mark failed" }).click();
    await page.locator(".notice").waitFor();

    step("set a variable");
    await page.goto(`${weir}/variables`);
    await page.locator('form[action="/variables"].stacked input[name="key"]').fill("own_variable");
    await page.locator('form[action="/variables"].stacked [name="value"]').fill("set from weir");
    await page.locator('form[action="/variables"].stacked [type="submit"]').click();
    await page.getByText("own_variable").first().waitFor();

    step("add a connection");
    await page.goto(`${weir}/connections`);
    await page.locator('form[action="/connections"] input[name="conn_id"]').fill("own_connection");
    await page.locator('form[action="/connections"] [name="url"]').fill("postgres://u:p@db.internal/d");
    await page.locator('form[action="/connections"] [type="submit"]').click();
    await page.getByText("own_connection").first().waitFor();

    step("pause the DAG from its page");
    await page.goto(`${weir}/dags/${dagId}`);
    await page.locator(".actions .toggle").click();
    await page.locator('.actions .toggle[aria-checked="false"]').waitFor();
    await shot("paused");

    step("the widths of bars come from weir.js, not inline styles");
    await page.goto(weir + runUrl);
    const bar = await page.locator(".gantt-bar").first().evaluate((element) => ({
      inline: element.getAttribute("style"), width: element.style.width, left: element.style.left, data: element.dataset.width }));
    if (!bar.width.endsWith("%") || !bar.left.endsWith("%")) throw new Error(`the Gantt bar was not placed: ${JSON.stringify(bar)}`);
  }

  if (problems.length) throw new Error(`problems in the browser:\n${problems.join("\n")}`);
  step("all good");
} finally {
  if (hostile) hostile.close();
  await browser.close();
}
