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
