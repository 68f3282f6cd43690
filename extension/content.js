// Content script: the captions overlay on the meeting page and, in 'element' mode (the
// fallback for any tab), capture of the page's own <audio>/<video> elements with
// captureStream(). Classic script (content scripts are not modules): the shared code is
// loaded with dynamic import() from the extension.
(() => {
  const w = /** @type {any} */ (window);
  if (w.__dragomanOverlay) return;
  w.__dragomanOverlay = true;

  /** @type {chrome.runtime.Port | null} */
  let port = null;
  /** @type {HTMLElement | null} */
  let host = null;
  /** @type {{source: HTMLElement, target: HTMLElement, status: HTMLElement} | null} */
  let view = null;
  /** @type {{ctx: AudioContext, capture: any, elements: HTMLMediaElement[]} | null} */
  let grab = null;
  /** @type {Map<HTMLMediaElement, number>} */
  const volumes = new Map();
  const lib = (/** @type {string} */ name) => import(chrome.runtime.getURL(`lib/${name}`));
  const DUCK_GAIN = 0.2; // as in offscreen.js: the page's media while the translation speaks

  function overlay() {
    if (view) return view;
    host = document.createElement('dragoman-captions');
    const root = host.attachShadow({ mode: 'open' });
    const link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = chrome.runtime.getURL('overlay.css');
    const box = document.createElement('div');
    box.className = 'box';
    box.innerHTML = '<div class="target" part="target"></div><div class="source" part="source"></div>'
      + '<div class="status"><span class="brand">Dragoman</span> <span class="text"></span></div>';
    root.append(link, box);
    document.documentElement.append(host);
    view = {
      target: /** @type {HTMLElement} */ (box.querySelector('.target')),
      source: /** @type {HTMLElement} */ (box.querySelector('.source')),
      status: /** @type {HTMLElement} */ (box.querySelector('.status .text')),
    };
    return view;
  }

  /** @param {any} status @param {Record<string, string>} labels */
  function statusText(status, labels) {
    if (status.error) return status.error.message;
    const parts = [labels[status.state] || status.state];
    if (status.latency != null) parts.push(`voice ${status.latency.toFixed(1)} s behind`);
    if (status.badge) parts.push(status.badge); // as announced by the server
    if (status.ducked) parts.push('meeting audio lowered');
    if (status.notice) parts.push(status.notice);
    return parts.join(' · ');
  }

  /** @param {any} m */
  async function onPortMessage(m) {
    if (m.type === 'captions') {
      const v = overlay();
      const [{ renderTrack }, { STATE_LABELS }] = await Promise.all([lib('captions.js'), lib('protocol.js')]);
      renderTrack(v.target, { lines: m.target }, { maxLines: 2 });
      renderTrack(v.source, { lines: m.source }, { maxLines: 1 });
      v.status.textContent = statusText(m.status, STATE_LABELS);
      v.status.classList.toggle('error', Boolean(m.status.error));
    } else if (m.type === 'playing' && grab) {
      // Ducking in element mode: lower the page's media while the translation speaks.
      for (const el of grab.elements) {
        if (!volumes.has(el)) volumes.set(el, el.volume);
        el.volume = m.playing && m.duck ? DUCK_GAIN * (volumes.get(el) ?? 1) : (volumes.get(el) ?? 1);
      }
    }
  }

  async function captureElements() {
    const elements = /** @type {HTMLMediaElement[]} */ (Array.from(document.querySelectorAll('audio, video')));
    if (!elements.length) throw new Error('no <audio> or <video> element on this page');
    const ctx = new AudioContext();
    const { startCapture } = await lib('audio.js');
    const mix = ctx.createGain();
    for (const el of elements) {
      const stream = /** @type {any} */ (el).captureStream();
      const attach = () => {
        if (stream.getAudioTracks().length) ctx.createMediaStreamSource(stream).connect(mix);
      };
      if (stream.getAudioTracks().length) attach();
      else stream.addEventListener('addtrack', attach, { once: true });
    }
    const dest = ctx.createMediaStreamDestination();
    mix.connect(dest);
    const capture = await startCapture(ctx, dest.stream, (/** @type {any} */ frame) => {
      const at = (performance.timeOrigin + performance.now()) / 1000 - (ctx.currentTime - frame.time);
      port?.postMessage({ type: 'frame', index: frame.index, pcm: Array.from(frame.pcm), at });
    });
    await ctx.resume();
    grab = { ctx, capture, elements };
  }

  function detach() {
    port?.disconnect();
    port = null;
    if (grab) {
      grab.capture.stop();
      grab.ctx.close();
      for (const [el, volume] of volumes) el.volume = volume;
      volumes.clear();
      grab = null;
    }
    host?.remove();
    host = null;
    view = null;
  }

  chrome.runtime.onMessage.addListener((message, _sender, sendResponse) => {
    if (message?.to !== 'content') return false;
    if (message.cmd === 'ping') { sendResponse({ ok: true }); return false; }
    if (message.cmd === 'detach') { detach(); sendResponse({ ok: true }); return false; }
    if (message.cmd === 'attach') {
      overlay();
      port = chrome.runtime.connect({ name: 'dragoman-tab' });
      port.onMessage.addListener(onPortMessage);
      const ready = message.mode === 'element' ? captureElements() : Promise.resolve();
      ready.then(() => sendResponse({ ok: true }), (e) => {
        if (view) view.status.textContent = `Cannot capture this page's media: ${e.message}`;
        sendResponse({ ok: false, error: String(e.message) });
      });
      return true;
    }
    return false;
  });
})();
