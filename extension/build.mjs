// Assembles the unpacked extension in build/extension/: the files of extension/ plus the
// shared protocol and audio module from dragoman/web/static/lib/ (one copy in the repo,
// used by the web page and the extension). No bundler: plain ES modules.
// Usage: node extension/build.mjs [outDir]
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const out = resolve(process.argv[2] || join(root, 'build', 'extension'));
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const name of readdirSync(here)) {
  if (name === 'build.mjs') continue;
  cpSync(join(here, name), join(out, name), { recursive: true });
}
cpSync(join(root, 'dragoman', 'web', 'static', 'lib'), join(out, 'lib'), { recursive: true });
process.stdout.write(`${out}\n`);
