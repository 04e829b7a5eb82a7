// The operator's Acknowledge button in a real browser: an operator opens a
// firing alert's delivery, presses Acknowledge (Chromium's own Origin and
// Sec-Fetch-Site headers meet the CSRF guard), and the page then says who
// acknowledged it; a viewer sees no button.
import { Failures, launch, guardedPage, axe, screenshot, finish } from "./harness.mjs";

const base = process.env.CHECKIT_URL;
const password = process.env.CHECKIT_PASSWORD;
const failures = new Failures();
const browser = await launch();
try {
  const viewer = await browser.newContext({ httpCredentials: { username: "victor", password } });
  const viewerPage = await guardedPage(viewer, failures);
  await viewerPage.goto(base + "/ui/deliveries");
  await viewerPage.locator("#deliveries tbody tr").first().locator("a").click();
  await viewerPage.waitForURL(/\/ui\/deliveries\/\d+$/);
  failures.check(
    (await viewerPage.getByRole("button", { name: "Acknowledge" }).count()) === 0,
    "a viewer gets no Acknowledge button",
  );

  const context = await browser.newContext({
    httpCredentials: { username: process.env.CHECKIT_USER, password },
    viewport: { width: 1280, height: 900 },
  });
  const page = await guardedPage(context, failures);
  await page.goto(base + "/ui/deliveries");
  await page.locator("#deliveries tbody tr").first().locator("a").click();
  await page.waitForURL(/\/ui\/deliveries\/\d+$/);
  const button = page.getByRole("button", { name: "Acknowledge" });
  failures.check((await button.count()) === 1, "an operator gets the Acknowledge button");
  await axe(page, failures, "delivery with the Acknowledge button");
  await screenshot(page, "ui-delivery-acknowledge.png");
  await button.click();
  await page.waitForLoadState();
  failures.check(
    (await page.locator("main").textContent()).includes("Acknowledged by olivia"),
    "the page says who acknowledged",
  );
  failures.check((await button.count()) === 0, "no second button");
  await axe(page, failures, "acknowledged delivery");
  await screenshot(page, "ui-delivery-acknowledged.png");
} catch (error) {
  failures.add("the script stopped: " + (error.stack || error));
} finally {
  await browser.close();
}
finish(failures);
