// Clicks through the weir web UI in headless Chromium: DAG list → DAG → trigger a run from the
// form → the grid turns green → graph → the run's Gantt → a task's log. Saves a screenshot of
// each page. Fails on any Content-Security-Policy violation (the pages hold no inline script or
// style). Logs in first as WEIR_UI_USER with WEIR_UI_PASSWORD (from the environment).
// Usage: node ui_check.mjs <base_url> <screenshot_dir> [dag_id]
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [baseUrl, screenshotDir, dagId = "ui_demo"] = process.argv.slice(2);
if (!baseUrl || !screenshotDir) {
  console.error("usage: node ui_check.mjs <base_url> <screenshot_dir> [dag_id]");
  process.exit(2);
}
mkdirSync(screenshotDir, { recursive: true });

const RUN_DEADLINE_MS = 60_000;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const problems = [];
try {
  const page = await browser.newPage({ viewport: { width: 1366, height: 860 } });
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  // Pages answered 4xx on purpose (a bad form, an unknown DAG) make Chromium log "Failed to load
  // resource"; a failing sub-resource (CSS, JS, a refresh fetch, the log stream) is a problem.
  page.on("console", (message) => {
    if (/Content Security Policy|Refused to (apply|execute|load|connect|frame)/i.test(message.text())) {
      problems.push(`CSP violation: ${message.text()}`);
    } else if (message.type() === "error" && !message.text().startsWith("Failed to load resource")) {
      problems.push(`console: ${message.text()}`);
    }
  });
  page.on("response", (response) => {
    if (response.status() >= 400 && response.request().resourceType() !== "document") {
      problems.push(`${response.status()} for ${response.url()}`);
    }
  });
  const shot = (name) => page.screenshot({ path: join(screenshotDir, `${name}.png`), fullPage: true });
  const step = (text) => console.log(`ui_check: ${text}`);

  step("without a session the UI sends us to the login page, which sends us back after login");
  await page.goto(baseUrl + "/");
  await page.waitForURL("**/login?next=**");
  await page.locator("#login-username").fill(process.env.WEIR_UI_USER || "admin");
  await page.locator("#login-password").fill("not the password");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.locator("#login-error").waitFor();
  await shot("00-login-refused");
  await page.locator("#login-password").fill(process.env.WEIR_UI_PASSWORD || "");
  await page.getByRole("button", { name: "Log in" }).click();
  await page.waitForURL((url) => url.pathname === "/");

  step("DAG list, under a Content-Security-Policy");
  const first = await page.goto(baseUrl + "/");
  const csp = first.headers()["content-security-policy"] || "";
  if (!csp.includes("script-src 'self'") || !csp.includes("style-src 'self'")) throw new Error(`no CSP on the page: ${csp}`);
  await page.getByRole("link", { name: dagId, exact: true }).waitFor();
  await shot("01-dag-list");

  step("open the DAG, then the trigger form");
  await page.getByRole("link", { name: dagId, exact: true }).click();
  await page.waitForURL(`**/dags/${dagId}**`);
  await page.getByRole("link", { name: "Trigger", exact: true }).first().click();
  await page.locator("#trigger-form").waitFor();
  await shot("02-trigger-form");

  step("a bad param value is refused readably");
  const numberField = page.locator("#param-rows");
  if (await numberField.count()) {
    await numberField.fill("many");
    await page.locator("#trigger-submit").click();
    await page.locator("#trigger-errors").waitFor();
    const message = await page.locator("#trigger-errors").innerText();
    if (!message.includes("rows")) throw new Error(`the params error does not name the param: ${message}`);
    await page.locator("#param-rows").fill("3");
  }

  step("trigger a run");
  await page.locator("#trigger-submit").click();
  await page.waitForURL(/tab=grid/);
  const runBar = page.locator(".grid .run-bar").first();
  await runBar.waitFor();
  await shot("03-grid-running");

  step("wait for the run to succeed in the grid (the page updates itself)");
  await page.waitForFunction(() => {
    const newest = document.querySelector(".grid .run-bar");
    return newest && newest.dataset.state === "success";
  }, null, { timeout: RUN_DEADLINE_MS, polling: 250 });
  const failedCells = await page.locator('.grid .cell[data-state="failed"]').count();
  if (failedCells > 0) throw new Error(`${failedCells} task(s) failed in the grid`);
  await shot("04-grid");

  step("graph");
  await page.getByRole("link", { name: "Graph", exact: true }).click();
  await page.locator(".graph svg g.node.state-success").first().waitFor();
  await shot("05-graph");

  step("run page with its Gantt chart");
  await page.getByRole("link", { name: "Grid", exact: true }).click();
  await page.locator(".grid .run-bar").first().click();
  await page.locator(".gantt .gantt-bar").first().waitFor();
  await shot("06-gantt");

  step("a task's log");
  await page.locator(".gantt-label").first().click();
  await page.locator("#log").waitFor();
  const logText = await page.locator("#log").innerText();
  if (!logText.trim()) throw new Error("the task log is empty");
  await shot("07-task-log");

  step("the Audit page lists the run triggered from the form");
  await page.getByRole("link", { name: "Audit", exact: true }).click();
  await page.waitForURL(/\/audit/);
  const triggered = page.locator("table tr", { hasText: "trigger_dag_run" }).filter({ hasText: dagId });
  await triggered.first().waitFor();
  const surface = await triggered.first().locator("td").nth(4).innerText();
  if (surface.trim() !== "ui") throw new Error(`the trigger is recorded with surface ${surface}, not ui`);
  await shot("08-audit");

  step("keyboard: the skip link and the first control take focus");
  await page.goto(baseUrl + "/");
  await page.keyboard.press("Tab");
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.textContent);
  if (!focused || !focused.includes("Skip")) throw new Error(`Tab did not reach the skip link first: ${focused}`);

  step("the Users page lists the admin, marked as the one logged in");
  await page.getByRole("link", { name: "Users", exact: true }).click();
  await page.locator("#users").getByText("(you)").waitFor();
  await shot("09-users");

  step("an unknown DAG gives a readable 404 (the browser logs the 404 itself: not a problem)");
  const response = await page.goto(baseUrl + "/dags/no_such_dag");
  if (response.status() !== 404) throw new Error(`expected 404, got ${response.status()}`);
  await page.getByText("There is no DAG").waitFor();
  await shot("09-not-found");

  if (problems.length) throw new Error(`errors in the browser:\n${problems.join("\n")}`);
  step("all good");
} finally {
  await browser.close();
}
