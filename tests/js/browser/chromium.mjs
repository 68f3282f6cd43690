// Launches the system Chromium (never a downloaded browser) through playwright-core.
import { mkdtempSync, rmSync } from 'node:fs';
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
