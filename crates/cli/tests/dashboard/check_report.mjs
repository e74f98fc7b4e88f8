// Opens a `blastwall verify` HTML report (a file) in headless Chromium (Debian's, through
// playwright-core) and reads its plots back. Run by ../report_html.rs:
//
//   node check_report.mjs <report.html> <screenshot path>
//
// Fails (exit 1) on a script error or console error on the page, a request for anything but
// the file itself, or a plot that renders with no size. Otherwise saves a full-page screenshot
// and prints one line of JSON: the summary's rows and, per plot, its experiment, kind, size,
// every point's series, second and value, its event markers and its fault band, as the
// browser reads them from the DOM.
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [file, screenshot] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const url = pathToFileURL(file).href;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (error) => errors.push(`page error: ${error}`));
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`console error: ${message.text()}`);
  });
  page.on("request", (request) => {
    if (request.url() !== url) errors.push(`requested ${request.url()}`);
  });
  await page.goto(url, { waitUntil: "load" });
  const found = await page.evaluate(() => {
    const rows = [...document.querySelectorAll("table.summary tbody tr")].map((row) => ({
      experiment: row.dataset.experiment,
      cells: [...row.cells].map((cell) => cell.innerText),
    }));
    const plots = [...document.querySelectorAll("svg[data-plot]")].map((svg) => {
      const box = svg.getBoundingClientRect();
      const points = [...svg.querySelectorAll("[data-series]")].map((node) => {
        const size = node.getBoundingClientRect();
        return {
          series: node.dataset.series,
          t: Number(node.dataset.t),
          value: Number(node.dataset.value),
          drawn: size.width > 0 && size.height > 0,
        };
      });
      const events = [...svg.querySelectorAll("[data-kind]")].map((node) => {
        const size = node.getBoundingClientRect();
        return { kind: node.dataset.kind, t: Number(node.dataset.t), drawn: size.height > 0 };
      });
      const band = svg.querySelector("rect.fault");
      const fault = band && { start: Number(band.dataset.start), end: Number(band.dataset.end) };
      return { experiment: svg.dataset.experiment, plot: svg.dataset.plot, width: box.width, height: box.height, points, events, fault };
    });
    return { rows, plots, scripts: document.scripts.length };
  });
  await page.screenshot({ path: screenshot, fullPage: true });
  if (errors.length) throw new Error(errors.join("; "));
  if (found.scripts) throw new Error(`${found.scripts} script element(s) on the page`);
  for (const plot of found.plots) {
    if (!(plot.width > 0 && plot.height > 0)) throw new Error(`plot ${plot.experiment}/${plot.plot} has no size`);
    const hidden = [...plot.points, ...plot.events].filter((point) => !point.drawn);
    if (hidden.length) throw new Error(`plot ${plot.experiment}/${plot.plot}: ${hidden.length} point(s) not drawn`);
  }
  console.log(JSON.stringify(found));
} catch (error) {
  failed = true;
  console.error(`report check failed: ${error.stack || error}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
