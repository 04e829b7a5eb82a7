// A check run by agents at three locations, on its check page in a real
// browser: each location's state, last result, failures and uptime over the
// last 24 hours, equal to what the API says; dark theme at phone width too.
import { Failures, launch, guardedPage, darkPhonePage, axe, screenshot, fitsWidth, finish } from "./harness.mjs";

const base = process.env.CHECKIT_URL;
const credentials = { username: process.env.CHECKIT_USER, password: process.env.CHECKIT_PASSWORD };
const failures = new Failures();
const browser = await launch();
try {
  const operator = await browser.newContext({ httpCredentials: credentials, viewport: { width: 1280, height: 900 } });
  const api = await (await operator.request.get(base + "/api/v1/checks/site")).json();
  const page = await guardedPage(operator, failures);
  await page.goto(base + "/checks/site");
  const rows = page.locator("#locations tbody tr");
  failures.check((await rows.count()) === 3, `three locations listed (${await rows.count()})`);
  const expected = { loc0: "Up", loc1: "Down", loc2: "Unknown" };
  for (const [location, state] of Object.entries(expected)) {
    const row = page.locator(`#locations tr[data-location=${location}]`);
    const cells = (await row.locator("td").allTextContents()).map((text) => text.trim());
    failures.check(cells[1] === state, `${location} is shown ${state} (${cells[1]})`);
    failures.check(api.check.locations[location].state === state.toLowerCase(), `${location}: the API agrees`);
    const summary = api.check.locations[location].last_24h;
    if (summary) {
      failures.check(cells[3] === `${summary.failures} of ${summary.runs}`, `${location} failures: ${cells[3]}`);
      const uptime = (Math.floor(summary.uptime * 10000) / 100).toFixed(2).replace(/\.?0+$/, "") + "%";
      failures.check(cells[4] === uptime, `${location} uptime: page ${cells[4]}, API ${uptime}`);
    } else {
      failures.check(cells[3] === "0 of 0" && cells[4] === "no data", `${location} has no results: ${cells}`);
      failures.check(cells[2] === "none yet", `${location} has no last result: ${cells[2]}`);
    }
  }
  const loc1 = (await page.locator("#locations tr[data-location=loc1] td").allTextContents()).map((text) => text.trim());
  failures.check(loc1[3] === "2 of 3" && loc1[4] === "33.33%", `loc1: two failures of three runs (${loc1})`);
  failures.check(loc1[2].endsWith("(failed)"), `loc1's last result failed (${loc1[2]})`);
  failures.check(loc1[5] !== "none", `loc1's last failure is shown (${loc1[5]})`);
  const rule = (await page.locator("#quorum").textContent()).trim();
  failures.check(rule.startsWith("Down when 2 of 3 locations"), `the quorum is stated (${rule})`);
  await axe(page, failures, "check page with locations");
  await screenshot(page, "check-locations.png");

  const phone = await darkPhonePage(browser, failures, { httpCredentials: credentials });
  await phone.goto(base + "/checks/site");
  await fitsWidth(phone, failures, "check page with locations, phone");
  await axe(phone, failures, "check page with locations, dark, phone");
  await screenshot(phone, "check-locations-dark-phone.png");
} catch (error) {
  failures.add("the script stopped: " + (error.stack || error));
} finally {
  await browser.close();
}
finish(failures);
