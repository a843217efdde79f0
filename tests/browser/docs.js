// docs.js — loads /docs (Swagger UI) and /redoc (ReDoc) of a running service in headless
// Chromium, driven by puppeteer-core, with every request that is not to loopback blocked (at
// the page, and by Chromium's host resolver for the browser's own): lists the operations each
// page shows, executes one from Swagger UI ("Try it out") and reads its live answer. Prints one
// JSON object; test_docs.py compares it with the served OpenAPI document.
// usage: node docs.js PORT CHROMIUM [METHOD PATH PARAM VALUE]
const puppeteer = require("puppeteer-core");

const [port, chromium, method = "get", opPath = "/v1/math/fib/{n}", param = "n", value = "10"] =
  process.argv.slice(2);
const base = `http://127.0.0.1:${port}`;

function loopback(url) {
  if (url.startsWith("data:") || url.startsWith("blob:") || url === "about:blank") return true;
  const h = new URL(url).hostname;
  return h === "127.0.0.1" || h === "localhost" || h === "[::1]";
}

async function open(browser, path, out) {
  const page = await browser.newPage();
  await page.setRequestInterception(true);
  page.on("request", (r) => {
    if (loopback(r.url())) return r.continue();
    out.blocked.push(r.url());
    return r.abort("blockedbyclient");
  });
  page.on("pageerror", (e) => out.errors.push(`${path}: ${e.message}`));
  page.on("response", (r) => {
    if (r.status() >= 400) out.errors.push(`${path}: ${r.status()} ${r.url()}`);
  });
  await page.goto(base + path, { waitUntil: "networkidle0", timeout: 60000 });
  return page;
}

async function swagger(browser, out) {
  const page = await open(browser, "/docs", out);
  await page.waitForSelector(".opblock", { timeout: 60000 });
  out.swagger.title = await page.title();
  out.swagger.ops = await page.$$eval(".opblock", (els) =>
    els.map((e) => {
      const m = e.querySelector(".opblock-summary-method");
      const p = e.querySelector(".opblock-summary-path");
      return [m ? m.textContent.trim().toLowerCase() : "",
              p ? (p.getAttribute("data-path") || p.textContent.trim()) : ""];
    }));
  // execute one: open it, "Try it out", fill its parameter, "Execute", read the live answer
  let target = null;
  for (const b of await page.$$(".opblock")) {
    const [m, p] = await b.evaluate((e) => [
      e.querySelector(".opblock-summary-method").textContent.trim().toLowerCase(),
      (e.querySelector(".opblock-summary-path").getAttribute("data-path") || "").trim()]);
    if (m === method && p === opPath) target = b;
  }
  if (!target) throw new Error(`no ${method} ${opPath} on /docs`);
  await (await target.$(".opblock-summary-control, .opblock-summary")).click();
  const tryOut = await target.waitForSelector(".try-out__btn", { timeout: 30000 });
  await tryOut.click();
  const input = await target.waitForSelector(`tr[data-param-name="${param}"] input`,
                                             { timeout: 30000 });
  await input.type(value);
  await (await target.waitForSelector(".execute", { timeout: 30000 })).click();
  await target.waitForSelector(".live-responses-table .response-col_status", { timeout: 30000 });
  out.swagger.executed = await target.evaluate((e) => {
    const row = e.querySelector(".live-responses-table tbody .response");
    const status = row.querySelector(".response-col_status").textContent.trim();
    const body = row.querySelector(".response-col_description pre, .highlight-code pre");
    const url = e.querySelector(".request-url pre");
    return { status: parseInt(status, 10), body: body ? body.textContent : null,
             url: url ? url.textContent.trim() : null };
  });
  await page.close();
}

async function redoc(browser, out) {
  const page = await open(browser, "/redoc", out);
  await page.waitForSelector("[data-section-id*='operation/']", { timeout: 60000 });
  out.redoc.title = await page.title();
  // each operation's section (nested elements share its id): its operationId
  out.redoc.ops = await page.$$eval("[data-section-id*='operation/']", (els) =>
    [...new Set(els.map((e) => e.getAttribute("data-section-id").replace(/^.*operation\//, "")))]);
  await page.close();
}

(async () => {
  const out = { swagger: {}, redoc: {}, blocked: [], errors: [] };
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--disable-default-apps",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"],
  });
  try {
    await swagger(browser, out);
    await redoc(browser, out);
  } catch (e) {
    out.errors.push(String(e && e.stack || e));
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(out));
})();
