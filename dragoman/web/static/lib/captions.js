// Renders a CaptionTrack into a DOM element: one block per utterance, committed text in
// `.dg-committed`, provisional text in `.dg-provisional` (styled as tentative by the
// host page's CSS). Lines are updated in place, never re-created, so nothing jumps.
// Shared by the web page and the extension's caption overlay.

/**
 * @param {HTMLElement} container
 * @param {import('./protocol.js').CaptionTrack} track
 * @param {{maxLines?: number}} [o]
 */
export function renderTrack(container, track, o = {}) {
  const max = o.maxLines ?? 6;
  const lines = track.lines.slice(-max);
  const doc = container.ownerDocument;
  /** @type {Map<string, HTMLElement>} */
  const existing = new Map();
  for (const child of Array.from(container.children)) {
    const key = /** @type {HTMLElement} */ (child).dataset.key;
    if (key) existing.set(key, /** @type {HTMLElement} */ (child));
  }
  const wanted = new Set(lines.map((l) => l.key));
  for (const [key, el] of existing) if (!wanted.has(key)) el.remove();
  for (const line of lines) {
    let el = existing.get(line.key);
    if (!el) {
      el = doc.createElement('p');
      el.className = 'dg-line';
      el.dataset.key = line.key;
      const committed = doc.createElement('span');
      committed.className = 'dg-committed';
      const provisional = doc.createElement('span');
      provisional.className = 'dg-provisional';
      el.append(committed, provisional);
      container.append(el);
    }
    const [committed, provisional] = /** @type {HTMLElement[]} */ (Array.from(el.children));
    if (committed.textContent !== line.committed) committed.textContent = line.committed;
    const rest = line.provisional ? (line.committed ? ' ' : '') + line.provisional : '';
    if (provisional.textContent !== rest) provisional.textContent = rest;
    el.classList.toggle('dg-final', line.final);
  }
}
