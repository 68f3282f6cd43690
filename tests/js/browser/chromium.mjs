// Launches the system Chromium (never a downloaded browser) through playwright-core.
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.DRAGOMAN_CHROMIUM || '/usr/bin/chromium';

/** Flags from the brief: headless, sandbox off (root), no network side traffic. */
export const BASE_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

/**
 * A persistent context with a fresh --user-data-dir (removed by close()).
 * @param {{args?: string[], headlessNew?: boolean}} [o]
 */
export async function launch(o = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'dragoman-chromium-'));
  const args = [o.headlessNew ? '--headless=new' : '--headless', ...BASE_ARGS, ...(o.args || [])];
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM, headless: false, args, viewport: { width: 1280, height: 800 },
    ignoreDefaultArgs: ['--disable-extensions', '--mute-audio'],
  });
  return {
    context,
    dir,
    async close() {
      await context.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** @param {() => Promise<boolean> | boolean} check @param {number} ms @param {number} [every] */
export async function waitFor(check, ms, every = 250) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, every));
  }
  return false;
}

/**
 * CPU seconds (user + system) used so far by this browser's processes, by process type
 * (browser, renderer, gpu-process, utility: the audio service...), read from /proc.
 * @param {string} dir the --user-data-dir that identifies this browser's processes
 * @returns {Record<string, number>}
 */
export function cpuSeconds(dir) {
  const tick = 100; // USER_HZ on Linux
  /** @type {Record<string, number>} */
  const out = {};
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      const root = cmd.includes(`--user-data-dir=${dir}`);
      if (!root && !cmd.includes(dir)) continue;
      const type = (/--type=([\w-]+)/.exec(cmd) || [null, 'browser'])[1] || 'browser';
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out[type] = (out[type] || 0) + (Number(fields[11]) + Number(fields[12])) / tick;
    } catch { /* gone */ }
  }
  return out;
}

/**
 * Decodes a saved screenshot (in the page: no image library needed) and measures regions
 * of it: per region its box, the share of dark pixels (`ink`: luma < 110), of light
 * pixels (`light`: luma > 200, text on a dark overlay) and the most common colour.
 * @param {import('playwright-core').Page} page
 * @param {Buffer} png
 * @param {Record<string, number[] | null>} boxes  name -> [x, y, width, height] in page pixels
 */
export async function inspectScreenshot(page, png, boxes) {
  return page.evaluate(async ({ b64, boxes }) => {
    const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const image = await createImageBitmap(new Blob([bytes], { type: 'image/png' }));
    const canvas = new OffscreenCanvas(image.width, image.height);
    const g = /** @type {OffscreenCanvasRenderingContext2D} */ (canvas.getContext('2d', { willReadFrequently: true }));
    g.drawImage(image, 0, 0);
    /** @type {Record<string, any>} */
    const regions = {};
    for (const [name, box] of Object.entries(boxes)) {
      if (!box) { regions[name] = null; continue; }
      const [x, y] = [Math.round(box[0]), Math.round(box[1])];
      const [w, h] = [Math.max(1, Math.round(box[2])), Math.max(1, Math.round(box[3]))];
      const data = g.getImageData(x, y, w, h).data;
      let ink = 0;
      let light = 0;
      /** @type {Map<string, number>} */
      const colours = new Map();
      for (let i = 0; i < data.length; i += 4) {
        const luma = 0.2126 * data[i] + 0.7152 * data[i + 1] + 0.0722 * data[i + 2];
        if (luma < 110) ink += 1;
        if (luma > 200) light += 1;
        const key = `#${[data[i], data[i + 1], data[i + 2]].map((v) => v.toString(16).padStart(2, '0')).join('')}`;
        colours.set(key, (colours.get(key) ?? 0) + 1);
      }
      const common = [...colours.entries()].sort((a, b) => b[1] - a[1])[0][0];
      regions[name] = { box: [x, y, w, h], ink: ink / (w * h), light: light / (w * h), background: common };
    }
    return { width: image.width, height: image.height, regions };
  }, { b64: png.toString('base64'), boxes });
}
