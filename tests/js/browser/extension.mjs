// Drives the meeting extension (loaded unpacked) in headless Chromium against a local
// "meeting" page that plays real speech in an <audio> element; prints one JSON line.
// Usage: node extension.mjs '{"url": "ws://...", "token": "...", "wav": "...", "extension": "build/extension",
//                            "source": "es", "target": "fr", "waitWords": [...], "timeoutMs": 120000, "screenshot": "..."}'
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { launch, waitFor } from './chromium.mjs';

const o = JSON.parse(process.argv[2]);
const MEETING = `<!doctype html><html><head><meta charset="utf-8"><title>Test meeting</title>
<style>body{font:16px system-ui;margin:0;background:#202124;color:#e8eaed;height:100vh}
.tiles{display:grid;grid-template-columns:1fr 1fr;gap:12px;padding:24px}
.tile{background:#3c4043;border-radius:8px;height:260px;display:flex;align-items:end;padding:12px}</style></head>
<body><div class="tiles"><div class="tile">Ana (speaking Spanish)</div><div class="tile">You</div></div>
<audio id="speech" src="/speech.wav" loop autoplay></audio></body></html>`;
const wav = readFileSync(o.wav);
const http = createServer((req, res) => {
  if (req.url === '/speech.wav') { res.writeHead(200, { 'Content-Type': 'audio/wav' }); res.end(wav); return; }
  res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8' });
  res.end(MEETING);
});
await new Promise((r) => http.listen(0, '127.0.0.1', () => r(undefined)));
const port = /** @type {import('node:net').AddressInfo} */ (http.address()).port;

const browser = await launch({
  headlessNew: true,
  args: [`--disable-extensions-except=${o.extension}`, `--load-extension=${o.extension}`],
});
/** @type {Record<string, any>} */
const result = { console: [] };
try {
  const { context } = browser;
  let [worker] = context.serviceWorkers();
  if (!worker) worker = await context.waitForEvent('serviceworker', { timeout: 20000 });
  const extensionId = new URL(worker.url()).host;
  result.extensionId = extensionId;

  // Settings through the real options page.
  const options = await context.newPage();
  await options.goto(`chrome-extension://${extensionId}/options.html`);
  await options.fill('#server', o.url);
  await options.fill('#token', o.token);
  await options.selectOption('#source', o.source ?? 'es');
  await options.selectOption('#target', o.target ?? 'fr');
  await options.click('button[type=submit]');
  await options.waitForSelector('#saved:has-text("Saved")');
  await options.close();

  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') result.console.push(m.text()); });
  await page.goto(`http://127.0.0.1:${port}/meeting.html`);
  await page.evaluate(() => /** @type {HTMLAudioElement} */ (document.getElementById('speech')).play());
  const t0 = Date.now();

  // tabCapture needs the user to invoke the extension on the tab (toolbar click), which
  // a headless run cannot do: record what Chromium says, then use the documented
  // fallback for any tab, capture of the page's own media element (captureStream()).
  const start = (/** @type {string} */ mode) => worker.evaluate(async ({ url, mode }) => {
    const [tab] = await chrome.tabs.query({ url });
    try {
      return { ok: true, reply: await /** @type {any} */ (globalThis).startTranslation(tab.id, { mode }) };
    } catch (e) {
      return { ok: false, error: String(/** @type {Error} */ (e).message || e) };
    }
  }, { url: `http://127.0.0.1:${port}/*`, mode });
  result.tabCapture = await start('tab');
  if (!result.tabCapture.ok || result.tabCapture.reply?.ok === false) {
    await worker.evaluate(async (url) => {
      const [tab] = await chrome.tabs.query({ url });
      await /** @type {any} */ (globalThis).stopTranslation(tab.id);
    }, `http://127.0.0.1:${port}/*`);
    result.mode = 'element';
    result.start = await start('element');
  } else {
    result.mode = 'tab';
    result.start = result.tabCapture;
  }

  const read = () => page.evaluate(() => {
    const host = document.querySelector('dragoman-captions');
    const root = host?.shadowRoot;
    return {
      overlay: Boolean(root),
      target: root?.querySelector('.target')?.textContent || '',
      source: root?.querySelector('.source')?.textContent || '',
      status: root?.querySelector('.status')?.textContent || '',
    };
  });
  const words = (o.waitWords || []).map((/** @type {string} */ w) => new RegExp(w, 'i'));
  result.ok = await waitFor(async () => {
    const s = await read();
    return s.overlay && words.every((/** @type {RegExp} */ w) => w.test(s.target));
  }, o.timeoutMs ?? 120000, 500);
  result.captionAfterMs = Date.now() - t0;
  if (o.extraMs) await page.waitForTimeout(o.extraMs);
  Object.assign(result, await read());
  if (o.screenshot) await page.screenshot({ path: o.screenshot });
} catch (error) {
  result.ok = false;
  result.exception = String((error && /** @type {Error} */ (error).stack) || error);
} finally {
  await browser.close();
  http.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
