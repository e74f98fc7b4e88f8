// Drives headless Chromium against a running proxy's dashboard while a fault made at run
// time is in force. Run by ../dashboard.rs, which starts the proxy, puts a 2 s delay on
// route "api" (rule f1) and drives requests until the cluster's breaker opens:
//
//   node check_faults.mjs <dashboard url> <screenshot path>
//
// Waits until the page shows the rule (target, action, seconds left) and the cluster's
// breaker open, saves a screenshot, prints "page shows the fault and the breaker open" and
// exits 0. Any failure exits 1.
import { chromium } from "playwright-core";

const [url, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const WITHIN = 20000;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  await page.goto(url);
  const row = page.locator('tr[data-fault="f1"]');
  await row.waitFor({ timeout: WITHIN });
  const text = await row.innerText();
  for (const wanted of ["route api", "delay 2s", "active"]) {
    if (!text.includes(wanted)) throw new Error(`the fault's row lacks "${wanted}": ${text}`);
  }
  const left = await page.locator('[data-fault-expires="f1"]').innerText();
  if (!/^\d+ s$/.test(left.trim())) throw new Error(`no seconds left shown: ${left}`);
  await page.waitForFunction(
    () => {
      const badge = document.querySelector('[data-cluster-breaker="api"]');
      return badge && /open/.test(badge.textContent) && !/half/.test(badge.textContent);
    },
    null,
    { timeout: WITHIN },
  );
  const timeline = await page.locator("#events").innerText();
  if (!/fault created/.test(timeline)) throw new Error(`no fault event on the timeline: ${timeline}`);
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error(`script errors on the page: ${errors.join("; ")}`);
  console.log(`page shows the fault (${left} left) and the breaker open; screenshot ${screenshot}`);
} catch (error) {
  failed = true;
  console.error(`dashboard check failed: ${error.stack || error}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
