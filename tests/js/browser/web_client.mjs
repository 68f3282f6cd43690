// Drives the web client in headless Chromium and prints one JSON result line.
// Usage: node web_client.mjs '<json options>'
//   {page, url, token, source, target, wav, screenshot, timeoutMs, extraMs, waitWords: [regex strings],
//    scenario: 'translate' | 'resume' | 'stop' | 'error' | 'mic_denied' | 'server_gone', killPid (server_gone)}
// Besides the page's own state (window.dragoman) it records, from the DOM as the user
// sees it: every committed caption text (committed text must only ever grow), the
// style of provisional text, the position of the caption panels (must never move), and
// pixel statistics of regions of the saved screenshot.
import { cpuSeconds, inspectScreenshot, launch, waitFor } from './chromium.mjs';

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

/** Watches the caption panels from the moment the session starts. Runs in the page. */
function watchCaptions() {
  const checks = {
    committedRewrites: /** @type {any[]} */ ([]), provisionalSeen: 0,
    provisionalStyle: /** @type {any} */ (null), committedStyle: /** @type {any} */ (null),
    layouts: /** @type {string[]} */ ([]), mutations: 0,
  };
  /** @type {Map<string, string>} */
  const committed = new Map();
  const captions = /** @type {HTMLElement} */ (document.querySelector('.captions'));
  const place = () => {
    const a = captions.getBoundingClientRect();
    const b = /** @type {HTMLElement} */ (document.querySelector('.meters')).getBoundingClientRect();
    return `captions ${Math.round(a.top)}+${Math.round(a.height)}, meters ${Math.round(b.top)}`;
  };
  checks.layouts.push(place());
  const style = (/** @type {Element} */ el) => {
    const s = getComputedStyle(el);
    return { color: s.color, decoration: `${s.textDecorationLine} ${s.textDecorationStyle}`,
      fontSize: s.fontSize, fontWeight: s.fontWeight, fontFamily: s.fontFamily };
  };
  new MutationObserver(() => {
    checks.mutations += 1;
    for (const line of Array.from(document.querySelectorAll('.captions .dg-line'))) {
      const [c, p] = Array.from(line.children);
      const key = `${line.closest('.lines')?.id}|${/** @type {HTMLElement} */ (line).dataset.key}`;
      const before = committed.get(key) ?? '';
      const now = c.textContent ?? '';
      if (!now.startsWith(before)) checks.committedRewrites.push({ key, before, now });
      committed.set(key, now);
      if ((p.textContent ?? '').trim()) {
        checks.provisionalSeen += 1;
        if (!checks.provisionalStyle) {
          checks.provisionalStyle = style(p);
          checks.committedStyle = style(c);
        }
      }
    }
    const at = place();
    if (at !== checks.layouts[checks.layouts.length - 1]) checks.layouts.push(at);
  }).observe(captions, { subtree: true, childList: true, characterData: true });
  Object.defineProperty(window, '__captionChecks', { value: checks });
}

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
  await page.evaluate(watchCaptions);
  const t0 = Date.now();
  await page.click('#start');
  const read = () => page.evaluate(() => {
    const d = /** @type {any} */ (window).dragoman;
    const badge = /** @type {HTMLElement} */ (document.getElementById('watermark'));
    return {
      status: d.status, error: d.error, audioFrames: d.audioFrames, audioStarted: d.audioStarted,
      latency: d.latency.summary(), latencyLog: d.latency.log, playback: d.playback,
      source: d.source.committedText(), target: d.target.committedText(),
      targetLines: d.target.lines, sessionId: d.sessionId, reconnects: d.reconnects,
      sessionInfoId: d.session?.info?.session_id ?? null, lastSeq: d.session?.lastSeq ?? 0,
      watermark: d.watermark,
      errorText: document.getElementById('error')?.hidden ? '' : document.getElementById('error')?.textContent,
      watermarkBadge: badge.hidden ? '' : badge.textContent,
      captionsText: document.getElementById('target-captions')?.textContent,
      captionChecks: /** @type {any} */ (window).__captionChecks,
    };
  });
  if (o.scenario === 'translate' || o.scenario === 'resume') {
    const words = (o.waitWords || []).map((/** @type {string} */ w) => new RegExp(w, 'i'));
    /** @type {Record<string, any> | null} */
    let atDrop = null;
    const ok = await waitFor(async () => {
      const s = await read();
      if (s.error) return true;
      if (o.scenario === 'resume') {
        // Drop the socket once translated speech flows; then wait for translated words
        // and speech that the resumed session produced after the drop.
        if (!atDrop) {
          if (s.status === 'open' && s.audioFrames > 0) {
            atDrop = { lastSeq: s.lastSeq, audioFrames: s.audioFrames, target: s.target, sessionId: s.sessionId };
            await page.evaluate(() => /** @type {any} */ (window).dragoman.session.dropConnection());
          }
          return false;
        }
        return s.reconnects >= 1 && s.status === 'open' && s.audioFrames > atDrop.audioFrames
          && s.target.length > atDrop.target.length && words.every((/** @type {RegExp} */ w) => w.test(s.target));
      }
      return words.every((/** @type {RegExp} */ w) => w.test(s.target)) && s.audioStarted >= (o.minAudioStarted ?? 1);
    }, o.timeoutMs ?? 120000, 500);
    result.ok = ok;
    result.atDrop = atDrop;
    result.firstCaptionAfterMs = Date.now() - t0;
    // CPU of the browser while it translates: capture, resampling, socket, playback, captions.
    const before = cpuSeconds(browser.dir);
    const wall0 = Date.now();
    if (o.extraMs) await page.waitForTimeout(o.extraMs);
    const after = cpuSeconds(browser.dir);
    const wall = (Date.now() - wall0) / 1000;
    result.cpu = { wallSeconds: wall, byProcess: Object.fromEntries(Object.keys(after).map((k) => [k,
      Number(((after[k] - (before[k] || 0)) / Math.max(wall, 1e-9)).toFixed(4))])) };
  } else if (o.scenario === 'stop') {
    // Stop while words are still provisional, in an utterance already under way (some
    // of it committed: the start of a fresh loop of the clip is a fragment the server
    // may rightly drop): what was said must still be translated and spoken, then the
    // session ends normally ('completed').
    result.live = await waitFor(async () => {
      const s = await read();
      const pending = await page.evaluate(() => /** @type {any} */ (window).dragoman.source.lines
        .some((/** @type {any} */ l) => l.committed.trim() && l.provisional.trim()));
      return Boolean(s.error) || (s.audioFrames > 0 && pending);
    }, o.timeoutMs ?? 120000, 50);
    result.atStop = await read();
    await page.click('#stop');
    result.statusAfterClick = (await read()).status;
    result.ok = await waitFor(async () => {
      const s = await read();
      return Boolean(s.error) || s.status === 'ended';
    }, o.timeoutMs ?? 60000);
    result.endReason = await page.evaluate(() => /** @type {any} */ (window).dragoman.endReason);
  } else if (o.scenario === 'server_gone') {
    // Speech flows, then the server process is killed: the client tries to resume for the
    // server's resume grace, then must say that the server went away.
    result.live = await waitFor(async () => {
      const s = await read();
      return s.status === 'open' && s.audioFrames > 0;
    }, o.timeoutMs ?? 20000);
    result.beforeKill = await read();
    process.kill(o.killPid, 'SIGKILL');
    result.ok = await waitFor(async () => Boolean((await read()).error), o.timeoutMs ?? 20000);
  } else {
    result.ok = await waitFor(async () => Boolean((await read()).error), o.timeoutMs ?? 20000);
  }
  Object.assign(result, await read());
  if (o.screenshot) {
    const png = await page.screenshot({ path: o.screenshot, fullPage: true });
    const boxes = await page.evaluate(() => Object.fromEntries([['translation', '#target-captions'],
      ['source', '#source-captions'], ['badge', '#watermark'], ['error', '#error']].map(([name, selector]) => {
      const el = /** @type {HTMLElement | null} */ (document.querySelector(selector));
      if (!el || el.hidden) return [name, null];
      const r = el.getBoundingClientRect();
      return [name, [r.left + scrollX, r.top + scrollY, r.width, r.height]];
    })));
    result.screenshot = await inspectScreenshot(page, png, boxes);
  }
} catch (error) {
  result.ok = false;
  result.exception = String((error && /** @type {Error} */ (error).stack) || error);
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(result) + '\n');
