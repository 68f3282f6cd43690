// Drives the web client in headless Chromium and prints one JSON result line.
// Usage: node web_client.mjs '<json options>'
//   {url, token, source, target, scenario: 'translate'|'mic_denied'|'bad_token'|'server_down'|'resume',
//    wav, screenshot, timeoutMs, waitWords: [regex strings]}
import { cpuSeconds, launch, waitFor } from './chromium.mjs';

const o = JSON.parse(process.argv[2]);
const args = [];
if (o.scenario === 'mic_denied') {
  // A real denial: no fake UI auto-accept, and the permission is not granted.
  args.push('--use-fake-device-for-media-stream', '--deny-permission-prompts');
} else {
  args.push('--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream');
  if (o.wav) args.push(`--use-file-for-fake-audio-capture=${o.wav}`);
}
const browser = await launch({ args });
/** @type {Record<string, any>} */
const result = { scenario: o.scenario, console: [] };
try {
  const page = await browser.context.newPage();
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') result.console.push(m.text()); });
  page.on('pageerror', (e) => result.console.push(`pageerror: ${e.message}`));
  await page.goto(o.page);
  await page.click('details.advanced summary');
  await page.fill('#server', o.url);
  await page.fill('#token', o.token ?? '');
  await page.selectOption('#source', o.source ?? 'es');
  await page.selectOption('#target', o.target ?? 'fr');
  const t0 = Date.now();
  await page.click('#start');
  const read = () => page.evaluate(() => {
    const d = /** @type {any} */ (window).dragoman;
    return {
      status: d.status, error: d.error, audioFrames: d.audioFrames, audioStarted: d.audioStarted,
      latency: d.latency.summary(), latencyLog: d.latency.log, playback: d.playback,
      source: d.source.committedText(), target: d.target.committedText(),
      targetLines: d.target.lines, sessionId: d.sessionId, reconnects: d.reconnects,
      errorText: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
      watermarkBadge: !document.getElementById('watermark').hidden,
      captionsText: document.getElementById('target-captions').textContent,
    };
  });
  if (o.scenario === 'translate' || o.scenario === 'resume') {
    const words = (o.waitWords || []).map((w) => new RegExp(w, 'i'));
    let dropped = false;
    const ok = await waitFor(async () => {
      const s = await read();
      if (o.scenario === 'resume' && !dropped && s.status === 'open' && s.audioFrames > 0) {
        await page.evaluate(() => /** @type {any} */ (window).dragoman.session.dropConnection());
        dropped = true;
      }
      if (s.error) return true;
      const haveWords = words.every((w) => w.test(s.target));
      return haveWords && s.audioStarted >= (o.minAudioStarted ?? 1)
        && (o.scenario !== 'resume' || s.reconnects >= 1);
    }, o.timeoutMs ?? 120000, 500);
    result.ok = ok;
    result.firstCaptionAfterMs = Date.now() - t0;
    // CPU of the browser while it translates: capture, resampling, socket, playback, captions.
    const before = cpuSeconds(browser.dir);
    const wall0 = Date.now();
    if (o.extraMs) await page.waitForTimeout(o.extraMs);
    const after = cpuSeconds(browser.dir);
    const wall = (Date.now() - wall0) / 1000;
    result.cpu = { wallSeconds: wall, byProcess: Object.fromEntries(Object.keys(after).map((k) => [k,
      Number(((after[k] - (before[k] || 0)) / Math.max(wall, 1e-9)).toFixed(4))])) };
  } else {
    result.ok = await waitFor(async () => Boolean((await read()).error), o.timeoutMs ?? 20000);
  }
  Object.assign(result, await read());
  if (o.screenshot) await page.screenshot({ path: o.screenshot, fullPage: true });
} catch (error) {
  result.ok = false;
  result.exception = String(error && error.stack || error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');

