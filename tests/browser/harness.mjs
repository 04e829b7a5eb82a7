// Shared pieces of checkit's browser tests: Debian's headless Chromium via
// playwright-core, a guard that fails on console errors, page errors and any
// request that would leave the machine, axe-core run inside the page, and
// screenshots for a person to look at.
import { chromium } from "playwright-core";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

const LOOPBACK = new Set(["127.0.0.1", "[::1]", "::1", "localhost"]);

export class Failures {
  constructor() {
    this.list = [];
  }
  add(message) {
    this.list.push(message);
    console.error("FAIL: " + message);
  }
  check(condition, message) {
    if (!condition) {
      this.add(message);
    }
  }
}

export async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--no-first-run",
      "--disable-dev-shm-usage",
    ],
  });
}

// A guarded page in the dark theme at phone width (390 × 844, 2×).
export async function darkPhonePage(browser, failures, options = {}) {
  const context = await browser.newContext({
    ...options,
    colorScheme: "dark",
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
  });
  return guardedPage(context, failures);
}

// A page whose every console error, uncaught exception and non-loopback
// request is recorded as a failure. `allowStatus` lists URL substrings whose
// HTTP error status is expected (the browser logs those as console errors).
export async function guardedPage(context, failures, allowStatus = []) {
  const page = await context.newPage();
  page.on("console", (message) => {
    if (message.type() === "error") {
      const text = message.text();
      const location = message.location()?.url || "";
      if (!allowStatus.some((part) => location.includes(part))) {
        failures.add(`console error on ${page.url()}: ${text} (${location})`);
      }
    }
  });
  page.on("pageerror", (error) => failures.add(`uncaught exception on ${page.url()}: ${error.message}`));
  await page.route("**/*", (route) => {
    const url = new URL(route.request().url());
    if (url.protocol === "data:" || LOOPBACK.has(url.hostname)) {
      return route.continue();
    }
    failures.add(`request leaving the machine: ${url.href}`);
    return route.abort("blockedbyclient");
  });
  return page;
}

// Runs axe-core in the page; serious and critical violations fail. The
// source is evaluated through the DevTools protocol, so the page's Content
// Security Policy (no inline script) stays on.
export async function axe(page, failures, label) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const run = await axe.run(document, { resultTypes: ["violations"] });
    return run.violations.map((violation) => ({
      id: violation.id,
      impact: violation.impact,
      help: violation.help,
      nodes: violation.nodes.slice(0, 3).map((node) => node.target.join(" ") + ": " + node.failureSummary),
    }));
  });
  for (const violation of result) {
    const line = `${label}: axe ${violation.impact} ${violation.id} (${violation.help}) at ${violation.nodes.join(" | ")}`;
    if (violation.impact === "serious" || violation.impact === "critical") {
      failures.add(line);
    } else {
      console.log("note: " + line);
    }
  }
}

export async function screenshot(page, name) {
  const file = path.join(process.env.SCREENSHOT_DIR || ".", name);
  await page.screenshot({ path: file, fullPage: true });
  console.log("screenshot: " + file);
}

// The page must not scroll sideways at phone width (tables scroll inside
// their own wrapper instead).
export async function fitsWidth(page, failures, label) {
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  failures.check(overflow <= 1, `${label}: the page is ${overflow}px wider than the screen`);
}

export function finish(failures) {
  if (failures.list.length) {
    console.error(`${failures.list.length} failure(s)`);
    process.exit(1);
  }
  console.log("all browser checks passed");
}
