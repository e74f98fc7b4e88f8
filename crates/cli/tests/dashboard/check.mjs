// Drives headless Chromium (Debian's, through playwright-core) against a running proxy's
// dashboard. Run by ../dashboard.rs, which starts the proxy and the mocks:
//
//   node check.mjs <dashboard url> <endpoint address> <screenshot path>
//
// 1. opens the page and waits until it shows the endpoint up; prints "page shows endpoint up";
// 2. waits for a line on stdin (the test has killed the endpoint's upstream meanwhile);
// 3. waits until the page shows that endpoint DOWN and its breaker open, saves a screenshot,
//    prints "page shows endpoint down and breaker open" and exits 0. Any failure exits 1.
import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const [url, endpoint, screenshot] = process.argv.slice(2);
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
  const row = page.locator(`tr[data-endpoint="${endpoint}"]`);
  await row.and(page.locator('[data-status="up"]')).waitFor({ timeout: WITHIN });
  console.log("page shows endpoint up");

  const stdin = createInterface({ input: process.stdin });
  await new Promise((resolve) => stdin.once("line", resolve));
  stdin.close();

  await row.and(page.locator('[data-status="down"]')).waitFor({ timeout: WITHIN });
  const breaker = page.locator(`[data-endpoint-breaker="${endpoint}"]`);
  await page.waitForFunction(
    (address) => {
      const cell = document.querySelector(`[data-endpoint-breaker="${address}"]`);
      return cell && /open/.test(cell.textContent) && !/half/.test(cell.textContent);
    },
    endpoint,
    { timeout: WITHIN },
  );
  const rowText = await row.innerText();
  if (!rowText.includes("DOWN")) throw new Error(`the row does not say DOWN: ${rowText}`);
  const timeline = await page.locator("#events").innerText();
  if (!/breaker opened/.test(timeline)) throw new Error(`no breaker event on the timeline: ${timeline}`);
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error(`script errors on the page: ${errors.join("; ")}`);
  console.log(`page shows endpoint down and breaker open (${await breaker.innerText()}); screenshot ${screenshot}`);
} catch (error) {
  failed = true;
  console.error(`dashboard check failed: ${error.stack || error}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
