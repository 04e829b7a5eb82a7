// The public status page, a check page and the operator's checks list in a
// real browser: what a person sees (banner, a down check shown as down, the
// outage day's colour, uptime figures equal to the API's), the day bar by
// keyboard, pause and resume by clicking, dark theme and phone width.
import { Failures, launch, guardedPage, axe, screenshot, fitsWidth, finish } from "./harness.mjs";

const base = process.env.CHECKIT_URL;
const credentials = { username: process.env.CHECKIT_USER, password: process.env.CHECKIT_PASSWORD };
const outageDay = process.env.OUTAGE_DAY; // e.g. "Fri 29 May 2026"
const failures = new Failures();
const browser = await launch();
try {
  // The public page, without credentials.
  const anonymous = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await guardedPage(anonymous, failures);
  await page.goto(base + "/status/public");
  const banner = (await page.locator("#banner").textContent()).trim();
  failures.check(banner === "Partial outage", `banner says ${banner}`);
  const dbState = (await page.locator("[data-check=db] .state").textContent()).trim();
  failures.check(dbState === "Down", `db is shown as down (${dbState})`);
  const wwwState = (await page.locator("[data-check=www] .state").textContent()).trim();
  failures.check(wwwState === "Operational", `www is shown as operational (${wwwState})`);

  // The outage day is drawn in the "down" colour, a clean day in the "up"
  // colour: the colour of the bar at the middle of each day, as painted.
  const outageIndex = 89 - Number(process.env.OUTAGE_DAYS_BACK);
  const colours = await page.evaluate((outage) => {
    const svg = document.querySelector("[data-check=www] svg.daybar");
    const box = svg.getBoundingClientRect();
    const at = (index) => {
      const x = box.left + (box.width * (index + 0.4)) / 90;
      const hit = document.elementFromPoint(x, box.top + box.height / 2);
      return hit && hit.closest("svg") === svg ? getComputedStyle(hit).fill : null;
    };
    return { days: svg.viewBox.baseVal.width, outage: at(outage), clean: at(88) };
  }, outageIndex);
  failures.check(colours.days === 90, `90 days drawn (${colours.days})`);
  failures.check(colours.outage === "rgb(207, 34, 46)", `the outage day is red (${colours.outage})`);
  failures.check(colours.clean === "rgb(45, 164, 78)", `a clean day is green (${colours.clean})`);

  // Uptime figures equal the API's (fetched with credentials in another context).
  const api = await browser.newContext({ httpCredentials: credentials });
  const apiResponse = await api.request.get(base + "/api/v1/checks/www");
  const uptime = (await apiResponse.json()).check.uptime;
  const shownUptime = await page.locator("[data-check=www] .uptimes li").allTextContents();
  for (const [window, ratio] of Object.entries(uptime)) {
    const expected = ratio === null ? "no data" : (Math.floor(ratio * 10000) / 100).toFixed(2).replace(/\.?0+$/, "") + "%";
    failures.check(shownUptime.includes(`${window} ${expected}`), `www ${window}: page ${shownUptime}, API ${expected}`);
  }

  // Badges: well-formed SVG (the browser's XML parser accepts them) whose
  // text is the API's figure.
  const badges = await page.evaluate(async (windows) => {
    const out = [];
    for (const window of windows) {
      const text = await (await fetch(`/badge/www/uptime/${window}.svg`)).text();
      const doc = new DOMParser().parseFromString(text, "image/svg+xml");
      out.push({
        window,
        wellFormed: doc.getElementsByTagName("parsererror").length === 0 && doc.documentElement.localName === "svg",
        title: doc.querySelector("title")?.textContent,
      });
    }
    return out;
  }, Object.keys(uptime));
  for (const badge of badges) {
    const ratio = uptime[badge.window];
    const expected = ratio === null ? "no data" : (Math.floor(ratio * 10000) / 100).toFixed(2).replace(/\.?0+$/, "") + "%";
    failures.check(badge.wellFormed, `the ${badge.window} badge is well-formed SVG`);
    failures.check(badge.title === `www ${badge.window}: ${expected}`, `the ${badge.window} badge says ${badge.title}, API ${expected}`);
  }

  // The Atom feed the page links to is well-formed XML with an entry per incident.
  const feed = await page.evaluate(async () => {
    const href = document.querySelector("link[rel=alternate][type='application/atom+xml']").getAttribute("href");
    const doc = new DOMParser().parseFromString(await (await fetch(href)).text(), "application/xml");
    return {
      wellFormed: doc.getElementsByTagName("parsererror").length === 0,
      root: doc.documentElement.namespaceURI + " " + doc.documentElement.localName,
      titles: Array.from(doc.getElementsByTagName("entry")).map((entry) => entry.getElementsByTagName("title")[0].textContent),
    };
  });
  failures.check(feed.wellFormed && feed.root === "http://www.w3.org/2005/Atom feed", `the feed is Atom XML (${feed.root})`);
  failures.check(feed.titles.includes("www down: refused (connect) (resolved)"), `the feed lists the www outage (${feed.titles})`);

  // The day bar by keyboard: focus it (today), step back a day, read the tip.
  const tip = page.locator("#daytip");
  await page.locator("[data-check=www] svg.daybar").focus();
  await tip.filter({ hasText: ": " }).waitFor({ timeout: 5000 });
  const today = await tip.textContent();
  await page.keyboard.press("ArrowLeft");
  await tip.filter({ hasNotText: today }).waitFor({ timeout: 5000 });
  const yesterday = await tip.textContent();
  failures.check(yesterday !== today && yesterday.includes(": "), `ArrowLeft moves to the day before (${today} -> ${yesterday})`);
  await page.locator("[data-check=www] svg.daybar").blur();
  // ...and by pointer: hovering the outage day shows its uptime, downtime and incidents.
  const bar = page.locator("[data-check=www] svg.daybar");
  const barBox = await bar.boundingBox();
  await page.mouse.move(barBox.x + (barBox.width * (outageIndex + 0.5)) / 90, barBox.y + barBox.height / 2);
  await tip.filter({ hasText: outageDay }).waitFor({ timeout: 5000 });
  const hovered = await tip.textContent();
  failures.check(hovered === `${outageDay}: 75% up, 6 h down, 1 incident`, `hovering the outage day describes it (${hovered})`);
  await axe(page, failures, "status page");
  await screenshot(page, "status-page.png");

  const dark = await browser.newContext({ colorScheme: "dark", viewport: { width: 390, height: 844 }, deviceScaleFactor: 2 });
  const phone = await guardedPage(dark, failures);
  await phone.goto(base + "/status/public");
  await fitsWidth(phone, failures, "status page on a phone");
  await axe(phone, failures, "status page, dark, phone");
  await screenshot(phone, "status-page-dark-phone.png");

  // A public page left open refreshes itself in place (its clock is
  // driven by the test, so a minute passes at once).
  const live = await guardedPage(anonymous, failures);
  await live.clock.install();
  await live.goto(base + "/status/public");
  await live.evaluate(() => { window.sameDocument = true; });

  // The check page and the operator list, logged in.
  const operator = await browser.newContext({ httpCredentials: credentials, viewport: { width: 1280, height: 900 } });
  const ops = await guardedPage(operator, failures);
  await ops.goto(base + "/checks/www?window=7d");
  failures.check((await ops.locator("svg.chart polyline").count()) >= 1, "the response-time chart has a line");
  failures.check((await ops.locator("#results tbody tr").count()) >= 10, "recent results listed");
  await axe(ops, failures, "check page");
  await screenshot(ops, "check-page.png");

  await ops.goto(base + "/ui/checks");
  await ops.getByRole("button", { name: "Pause www" }).click();
  await ops.waitForLoadState();
  failures.check((await ops.locator("[role=status]").textContent()).includes("Paused www."), "pause confirmed");
  failures.check((await ops.locator("[data-check=www]").getAttribute("data-state")) === "paused", "www shown paused");
  await axe(ops, failures, "checks list");
  await screenshot(ops, "ui-checks.png");
  await ops.getByRole("button", { name: "Resume www" }).click();
  await ops.waitForLoadState();
  failures.check((await ops.locator("[role=status]").textContent()).includes("Resumed www."), "resume confirmed");
  failures.check((await ops.locator("[data-check=www]").getAttribute("data-state")) !== "paused", "www no longer paused");
  // The heartbeat is a row like the checks, with its kind, and its page shows the ping's body.
  const nightly = ops.locator("[data-check=nightly]");
  failures.check((await nightly.getAttribute("data-state")) === "up", "heartbeat nightly listed up");
  failures.check((await nightly.locator("[data-kind=heartbeat]").count()) === 1, "nightly's kind is heartbeat");
  await nightly.locator("a").click();
  await ops.waitForURL(/\/checks\/nightly$/);
  const ping = ops.locator("#pings tbody tr").first();
  failures.check((await ping.locator("pre").textContent()) === process.env.NIGHTLY_BODY, "the ping's body is shown as text");
  failures.check((await ping.getAttribute("data-kind")) === "success", "the ping is a success");
  await axe(ops, failures, "heartbeat check page");
  await screenshot(ops, "heartbeat-page.png");
  await ops.goto(base + "/ui/checks");
  await Promise.all([ops.waitForURL(/state=down/), ops.getByLabel("State").selectOption("down")]);
  const listed = await ops.locator("#checks tbody tr[data-check]").evaluateAll((rows) => rows.map((row) => row.dataset.check));
  failures.check(listed.length === 1 && listed[0] === "db", `the state filter leaves db (${listed})`);

  // An incident note, written in the form.
  await ops.goto(base + "/ui/incidents");
  await ops.locator("#incidents tbody tr", { hasText: "db down" }).first().locator("a").click();
  await ops.waitForURL(/\/ui\/incidents\/\d+$/);
  await ops.getByLabel("Title", { exact: true }).fill("Database unreachable");
  await ops.getByLabel("Status of this update").selectOption("identified");
  await ops.locator("#i-body").fill("The disk is **full**; cleaning up. <b>raw html stays text</b>");
  await ops.getByRole("button", { name: "Save" }).click();
  await ops.waitForLoadState();
  failures.check((await ops.locator("[role=status]").textContent()).includes("Update posted (identified)."), "update posted");
  failures.check((await ops.locator(".update .md strong").textContent()) === "full", "the update's Markdown is rendered");
  failures.check((await ops.locator(".update .md b").count()) === 0, "raw HTML in an update is not rendered");
  await axe(ops, failures, "incident page");
  await screenshot(ops, "ui-incident.png");

  // A maintenance window, planned in the form.
  await ops.goto(base + "/ui/maintenance");
  await ops.getByLabel("What is being done").fill("Database upgrade");
  await ops.locator("#m-checks").selectOption(["db"]);
  await ops.getByRole("button", { name: "Plan maintenance" }).click();
  await ops.waitForLoadState();
  failures.check((await ops.locator("[role=status]").textContent()).includes("Maintenance planned for db"), "window planned");
  failures.check((await ops.locator("#windows tbody tr", { hasText: "Database upgrade" }).count()) === 1, "window listed");
  await axe(ops, failures, "maintenance page");
  await screenshot(ops, "ui-maintenance.png");

  // The open public page picks both up without a reload.
  await live.clock.fastForward(61000);
  await live.locator("#status-live").getByText("Database unreachable").first().waitFor({ timeout: 10000 });
  await live.locator("#maintenance").getByText("Upcoming maintenance: Database upgrade").waitFor({ timeout: 10000 });
  failures.check(await live.evaluate(() => window.sameDocument === true), "the page refreshed in place, not reloaded");
  failures.check(
    (await live.locator(".incident .md strong").first().textContent()) === "full",
    "the update is shown on the status page",
  );
  await axe(live, failures, "status page with notes and maintenance");
  await screenshot(live, "status-page-annotated.png");
} catch (error) {
  failures.add("the script stopped: " + (error.stack || error));
} finally {
  await browser.close();
}
finish(failures);
