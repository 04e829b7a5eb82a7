// The operator UI in a real browser: overview, delivery history with a
// filter chosen from a select, sort, a delivery's detail, the outbox, a
// reload through the form (so Chromium's own Origin and Sec-Fetch-Site
// headers meet the CSRF guard), dark theme and phone width.
import { Failures, launch, guardedPage, axe, screenshot, fitsWidth, finish } from "./harness.mjs";

const base = process.env.CHECKIT_URL;
const credentials = { username: process.env.CHECKIT_USER, password: process.env.CHECKIT_PASSWORD };
const failures = new Failures();
const browser = await launch();
try {
  const context = await browser.newContext({ httpCredentials: credentials, viewport: { width: 1280, height: 900 } });
  const page = await guardedPage(context, failures);

  // Overview.
  await page.goto(base + "/ui/");
  failures.check((await page.locator("h1").textContent()) === "checkit", "overview heading");
  failures.check((await page.locator("header .who").textContent()).includes("operator"), "the operator is named");
  await page.keyboard.press("Tab");
  failures.check(
    (await page.evaluate(() => document.activeElement.textContent)) === "Skip to content",
    "the first Tab stop is the skip link",
  );
  await axe(page, failures, "overview");
  await screenshot(page, "ui-overview.png");

  // Reload through the real form.
  await page.getByRole("button", { name: "Reload configuration" }).click();
  await page.waitForLoadState();
  failures.check(
    (await page.locator("[role=status]").textContent()).includes("Configuration reloaded."),
    "reload through the form succeeds",
  );

  // Delivery history: everything, then only bob's, via the select.
  await page.goto(base + "/ui/deliveries");
  const allRows = await page.locator("#deliveries tbody tr").count();
  failures.check(allRows >= 6, `history lists every delivery (${allRows})`);
  await axe(page, failures, "deliveries");
  await screenshot(page, "ui-deliveries.png");
  await Promise.all([page.waitForURL(/contact=bob/), page.getByLabel("Contact").selectOption("bob")]);
  const contacts = await page.locator("#deliveries tbody tr td:nth-child(2)").allTextContents();
  failures.check(contacts.length >= 2 && contacts.every((name) => name === "bob"), `only bob's rows: ${contacts}`);
  const outcomes = await page.locator("#deliveries tbody tr td:nth-child(4)").allTextContents();
  failures.check(outcomes.every((outcome) => outcome.trim() === "failed"), `bob's attempts failed: ${outcomes}`);

  // Sort by outcome, then open a failed attempt.
  await page.getByRole("link", { name: "Outcome" }).click();
  await page.waitForURL(/sort=outcome/);
  failures.check((await page.locator("th[aria-sort]").textContent()).includes("Outcome"), "sorted column marked");
  await page.locator("#deliveries tbody tr").first().locator("a").click();
  await page.waitForURL(/\/ui\/deliveries\/\d+$/);
  failures.check((await page.locator("h1").textContent()).includes("failed"), "detail heading says failed");
  failures.check((await page.locator("pre").allTextContents()).join(" ").includes("500"), "provider status shown");
  await axe(page, failures, "delivery detail");
  await screenshot(page, "ui-delivery.png");

  // The outbox.
  await page.goto(base + "/ui/outbox");
  const held = await page.locator("#outbox tbody tr[data-state=held]").count();
  failures.check(held >= 2, `carol's messages are held (${held})`);
  await axe(page, failures, "outbox");
  await screenshot(page, "ui-outbox.png");

  // Dark theme and phone width.
  const dark = await browser.newContext({
    httpCredentials: credentials,
    colorScheme: "dark",
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
  });
  const phone = await guardedPage(dark, failures);
  await phone.goto(base + "/ui/deliveries");
  const background = await phone.evaluate(() => getComputedStyle(document.body).backgroundColor);
  failures.check(background === "rgb(13, 17, 23)", `dark theme applies (${background})`);
  await fitsWidth(phone, failures, "deliveries on a phone");
  const outcomeBox = await phone.locator("#deliveries tbody tr").first().locator("td[data-label=Outcome] .state").boundingBox();
  failures.check(
    outcomeBox !== null && outcomeBox.width > 0 && outcomeBox.x + outcomeBox.width <= 390,
    `the outcome is on screen at phone width (${JSON.stringify(outcomeBox)})`,
  );
  await axe(phone, failures, "deliveries, dark, phone");
  await screenshot(phone, "ui-deliveries-dark-phone.png");
  await phone.goto(base + "/ui/");
  await fitsWidth(phone, failures, "overview on a phone");
  await screenshot(phone, "ui-overview-dark-phone.png");
} catch (error) {
  failures.add("the script stopped: " + (error.stack || error));
} finally {
  await browser.close();
}
finish(failures);
