// Drives the meeting extension (loaded unpacked) in headless Chromium and prints one
// JSON line. Usage: node extension.mjs '<json options>'
//   {url, token, wav, extension, extensionId, source, target, waitWords, timeoutMs, extraMs, screenshot,
//    scenario: 'tab' | 'element' | 'mic'}
// 'tab':     a local "meeting" page plays real speech in an <audio> element; the extension
//            translates the tab with chrome.tabCapture + its offscreen document. tabCapture
//            needs the user to invoke the extension on the tab (a toolbar click, which
//            automation cannot make); Chromium's --allowlisted-extension-id switch grants
//            this extension that permission instead, so the real capture path runs.
// 'element': without that grant: records Chromium's refusal of tabCapture, then uses the
//            extension's fallback for any tab (the page's own media via captureStream()).
// 'mic':     the fake microphone (real speech) is published by the extension as a speaker
//            in a room; a listener in that room (opened from an extension page with the
//            shared lib/client.js) must receive the translation.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { inspectScreenshot, launch, waitFor } from './chromium.mjs';

const o = JSON.parse(process.argv[2]);
const scenario = o.scenario ?? 'tab';
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

const args = [`--disable-extensions-except=${o.extension}`, `--load-extension=${o.extension}`];
if (scenario === 'tab') args.push(`--allowlisted-extension-id=${o.extensionId}`);
if (scenario === 'mic') {
  args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream',
    `--use-file-for-fake-audio-capture=${o.wav}`);
}
const browser = await launch({ headlessNew: true, args });
/** @type {Record<string, any>} */
const result = { scenario, console: [] };
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
  if (scenario === 'mic') {
    await options.fill('#room', o.room ?? 'test-room');
    await options.selectOption('#micSource', o.source ?? 'es');
    await options.fill('#name', 'Ana');
  }
  await options.click('button[type=submit]');
  await options.waitForSelector('#saved:has-text("Saved")');

  const words = (o.waitWords || []).map((/** @type {string} */ w) => new RegExp(w, 'i'));
  if (scenario === 'mic') {
    await runMic(worker, options, words);
  } else {
    await options.close();
    await runTab(context, worker, words);
  }
} catch (error) {
  result.ok = false;
  result.exception = String((error && /** @type {Error} */ (error).stack) || error);
} finally {
  await browser.close();
  http.close();
}
process.stdout.write(JSON.stringify(result) + '\n');

/**
 * @param {import('playwright-core').BrowserContext} context
 * @param {import('playwright-core').Worker} worker
 * @param {RegExp[]} words
 */
async function runTab(context, worker, words) {
  const page = await context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') result.console.push(m.text()); });
  await page.goto(`http://127.0.0.1:${port}/meeting.html`);
  await page.evaluate(() => /** @type {HTMLAudioElement} */ (document.getElementById('speech')).play());
  const t0 = Date.now();
  const tabUrl = `http://127.0.0.1:${port}/*`;
  const start = (/** @type {string} */ mode) => worker.evaluate(async ({ url, mode }) => {
    const [tab] = await chrome.tabs.query({ url });
    try {
      return { ok: true, reply: await /** @type {any} */ (globalThis).startTranslation(tab.id, { mode }) };
    } catch (e) {
      return { ok: false, error: String(/** @type {Error} */ (e).message || e) };
    }
  }, { url: tabUrl, mode });
  result.tabCapture = await start('tab');
  if (scenario === 'element') {
    await worker.evaluate(async (url) => {
      const [tab] = await chrome.tabs.query({ url });
      await /** @type {any} */ (globalThis).stopTranslation(tab.id);
    }, tabUrl);
    result.start = await start('element');
  } else {
    result.start = result.tabCapture;
  }

  const read = () => page.evaluate(() => {
    const root = document.querySelector('dragoman-captions')?.shadowRoot;
    return {
      overlay: Boolean(root),
      target: root?.querySelector('.target')?.textContent || '',
      source: root?.querySelector('.source')?.textContent || '',
      status: root?.querySelector('.status')?.textContent || '',
      volume: /** @type {HTMLAudioElement} */ (document.getElementById('speech')).volume,
    };
  });
  /** @type {Set<string>} */
  const statuses = new Set();
  let minVolume = 1;
  const observe = async () => {
    const s = await read();
    statuses.add(s.status);
    minVolume = Math.min(minVolume, s.volume);
    return s;
  };
  // The overlay keeps only the last lines: keep what it showed when the words appeared.
  result.ok = await waitFor(async () => {
    const s = await observe();
    const found = s.overlay && words.every((w) => w.test(s.target));
    if (found) result.matched = s.target;
    return found;
  }, o.timeoutMs ?? 120000, 250);
  result.captionAfterMs = Date.now() - t0;
  // Then watch a little longer, and (tab and element modes) until the page's audio was seen
  // ducked: the captions can commit well before the translation starts to speak.
  const ducked = () => minVolume < 1 || [...statuses].some((s) => s.includes('lowered'));
  const until = Date.now() + (o.extraMs ?? 0);
  const duckUntil = Date.now() + (scenario === 'mic' ? 0 : 30000);
  while (Date.now() < until || (result.ok && !ducked() && Date.now() < duckUntil)) {
    await observe();
    await page.waitForTimeout(100);
  }
  Object.assign(result, await read());
  result.statuses = [...statuses];
  result.minVolume = minVolume;
  if (o.screenshot) {
    const png = await page.screenshot({ path: o.screenshot });
    const box = await page.evaluate(() => {
      const el = document.querySelector('dragoman-captions')?.shadowRoot?.querySelector('.target');
      const r = el?.getBoundingClientRect();
      return r ? [r.left, r.top, r.width, r.height] : null;
    });
    result.screenshot = await inspectScreenshot(page, png, { overlay: box });
  }
}

/**
 * @param {import('playwright-core').Worker} worker
 * @param {import('playwright-core').Page} page  an extension page (its origin is allowed by the server)
 * @param {RegExp[]} words
 */
async function runMic(worker, page, words) {
  // A listener in the room, through the same shared client module the extension uses.
  await page.evaluate(async ({ url, token, room, target }) => {
    const { DragomanSession } = await import('./lib/client.js');
    const { CaptionTrack } = await import('./lib/protocol.js');
    const track = new CaptionTrack({ kind: 'translation', language: target });
    const heard = { speakers: /** @type {string[]} */ ([]), audio: 0, track };
    const listener = new DragomanSession({ url, token, start: { role: 'listener', room, targets: [target] } });
    listener.addEventListener('message', (e) => {
      const m = /** @type {CustomEvent} */ (e).detail;
      track.apply(m);
      if (m.speaker && !heard.speakers.includes(m.speaker)) heard.speakers.push(m.speaker);
    });
    listener.addEventListener('audio', () => { heard.audio += 1; });
    await listener.open();
    Object.assign(window, { heard, listener });
  }, { url: o.url, token: o.token, room: o.room ?? 'test-room', target: o.target ?? 'fr' });
  const t0 = Date.now();
  result.start = await worker.evaluate(() => /** @type {any} */ (globalThis).startMicrophone());
  const read = () => page.evaluate(() => {
    const h = /** @type {any} */ (window).heard;
    return { target: h.track.committedText(), speakers: h.speakers, audio: h.audio };
  });
  result.ok = await waitFor(async () => {
    const s = await read();
    return words.every((w) => w.test(s.target)) && s.audio > 0;
  }, o.timeoutMs ?? 120000, 500);
  result.captionAfterMs = Date.now() - t0;
  Object.assign(result, await read());
  result.micStatus = await worker.evaluate(() => /** @type {any} */ (globalThis).microphoneStatus());
  result.stop = await worker.evaluate(() => /** @type {any} */ (globalThis).stopMicrophone());
  result.micStatusAfterStop = await worker.evaluate(() => /** @type {any} */ (globalThis).microphoneStatus());
  await page.evaluate(() => /** @type {any} */ (window).listener.close());
}
