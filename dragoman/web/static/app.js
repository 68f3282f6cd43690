// The Dragoman web client: microphone -> server (protocol v1) -> live captions and
// translated speech. UI only; protocol and audio code live in ./lib (shared with the
// meeting extension).
import { CaptionTrack, LANGUAGES, STATE_LABELS, describeError } from './lib/protocol.js';
import { DragomanError, DragomanSession, endProblem } from './lib/client.js';
import { LatencyMeter, Player, startCapture } from './lib/audio.js';
import { renderTrack } from './lib/captions.js';

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);

const ui = {
  form: $('setup'), source: $('source'), target: $('target'), server: $('server'), token: $('token'),
  speak: $('speak'), start: $('start'), stop: $('stop'), status: $('status'), error: $('error'),
  notice: $('notice'), watermark: $('watermark'), sourceCaptions: $('source-captions'),
  targetCaptions: $('target-captions'), sourceLabel: $('source-label'), targetLabel: $('target-label'),
  level: $('level'), latency: $('latency'), buffer: $('buffer'), lag: $('lag'),
};

for (const [code, name] of LANGUAGES) {
  ui.source.add(new Option(`${name} (${code})`, code));
  ui.target.add(new Option(`${name} (${code})`, code));
}
const params = new URLSearchParams(location.search);
const stored = JSON.parse(localStorage.getItem('dragoman.settings') || '{}');
ui.source.value = params.get('source') || stored.source || 'es';
ui.target.value = params.get('target') || stored.target || 'fr';
ui.server.value = params.get('server') || stored.server
  || `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1`;
ui.token.value = sessionStorage.getItem('dragoman.token') || '';

/** State the tests (and curious users) can read: window.dragoman. */
const state = {
  status: 'idle', error: /** @type {{code: string, message: string} | null} */ (null),
  audioFrames: 0, audioStarted: 0, latency: new LatencyMeter(), playback: {},
  source: new CaptionTrack({ kind: 'source' }), target: new CaptionTrack({ kind: 'translation' }),
  sessionId: '', reconnects: 0, endReason: '',
  /** What the server said about its speech (session.started output.watermark). */
  watermark: /** @type {{watermarked: boolean, text: string} | null} */ (null),
  /** @type {DragomanSession | null} */ session: null,
};
Object.defineProperty(window, 'dragoman', { value: state });

/** @type {{ctx: AudioContext, stream: MediaStream, capture: any, player: Player} | null} */
let running = null;

/** @param {string} text @param {string} stateName */
function setStatus(text, stateName) {
  ui.status.textContent = text;
  ui.status.dataset.state = stateName;
  state.status = stateName;
}

/** @param {string} code @param {string} [detail] @param {string} [message] */
function showError(code, detail, message) {
  state.error = { code, message: message ?? describeError(code, detail) };
  ui.error.textContent = state.error.message;
  ui.error.dataset.code = code;
  ui.error.hidden = false;
}

/** A notice takes a row reserved for it: showing one never moves the captions. @param {string} text */
function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.classList.toggle('empty', !text);
}

function render() {
  renderTrack(ui.sourceCaptions, state.source);
  renderTrack(ui.targetCaptions, state.target);
}

/** @param {number | null} s */
const seconds = (s) => (s === null ? '–' : `${s.toFixed(2)} s`);

function renderMeters() {
  const l = state.latency.summary();
  ui.latency.textContent = l.count ? `${seconds(l.last)} (median ${seconds(l.median)})` : '–';
  const p = /** @type {any} */ (state.playback);
  if (p.bufferedMs !== undefined) {
    ui.buffer.textContent = `${Math.round(p.bufferedMs)} ms · ${p.underruns} underrun${p.underruns === 1 ? '' : 's'}`;
  }
}

async function start() {
  ui.error.hidden = true;
  showNotice('');
  state.error = null;
  const source = ui.source.value;
  const target = ui.target.value;
  localStorage.setItem('dragoman.settings', JSON.stringify({ source, target, server: ui.server.value }));
  sessionStorage.setItem('dragoman.token', ui.token.value);
  state.source = new CaptionTrack({ kind: 'source' });
  state.target = new CaptionTrack({ kind: 'translation', language: target });
  state.latency = new LatencyMeter();
  state.watermark = null;
  ui.watermark.hidden = true;
  ui.sourceCaptions.replaceChildren();
  ui.targetCaptions.replaceChildren();
  ui.sourceLabel.textContent = source === 'auto' ? '' : `(${source})`;
  ui.targetLabel.textContent = `(${target})`;
  ui.start.disabled = true;
  ui.stop.disabled = false;

  // The AudioContext is created inside the click so that it may start playing.
  const ctx = new AudioContext({ latencyHint: 'interactive' });
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: false, autoGainControl: false },
    });
  } catch (error) {
    const name = /** @type {Error} */ (error).name;
    showError(name === 'NotAllowedError' || name === 'SecurityError' ? 'client.mic_denied' : 'client.mic_unavailable');
    setStatus('Microphone unavailable', 'failed');
    await ctx.close();
    reset();
    return;
  }

  const session = new DragomanSession({
    url: ui.server.value, token: ui.token.value || undefined,
    start: { source, targets: [target], speak: ui.speak.checked },
  });
  state.session = session;
  session.addEventListener('state', (e) => {
    const { state: s, reconnects } = /** @type {CustomEvent} */ (e).detail;
    state.reconnects = reconnects;
    setStatus(/** @type {Record<string, string>} */ (STATE_LABELS)[s] || s, s);
    if (s === 'reconnecting') showNotice(describeError('client.connection_lost'));
    if (s === 'open' && reconnects) showNotice(`Reconnected; the session resumed (${reconnects}×).`);
  });
  session.addEventListener('message', (e) => {
    const m = /** @type {CustomEvent} */ (e).detail;
    if (state.source.apply(m) || state.target.apply(m)) render();
    else if (m.type === 'lag') ui.lag.textContent = `${Number(m.behind).toFixed(1)} s (${m.stage})`;
  });
  session.addEventListener('notice', (e) => {
    const n = /** @type {CustomEvent} */ (e).detail;
    showNotice(describeError(n.code, n.message));
  });
  session.addEventListener('audio', (e) => {
    const frame = /** @type {CustomEvent} */ (e).detail;
    if (frame.language !== target || !running) return;
    state.audioFrames += 1;
    if (!state.watermark) showBadge(session.badge);
    state.latency.queued(frame.seq, frame.sourceEnd, frame.language, running.ctx.currentTime);
    running.player.push(frame);
  });
  session.addEventListener('end', (e) => {
    const d = /** @type {CustomEvent} */ (e).detail;
    if (!d.error) state.endReason = d.reason;
    const problem = endProblem(d);
    if (problem) showError(problem.code, undefined, problem.message);
    stopAudioWhenPlayed();
    reset();
  });

  try {
    const started = await session.open();
    state.sessionId = started.session_id;
  } catch (error) {
    const err = /** @type {DragomanError} */ (error);
    showError(err.code || 'client.server_unreachable', err.message);
    stream.getTracks().forEach((t) => t.stop());
    await ctx.close();
    reset();
    return;
  }

  try {
    const player = new Player(ctx);
    await player.init();
    player.addEventListener('stats', (e) => { state.playback = /** @type {CustomEvent} */ (e).detail; renderMeters(); });
    player.addEventListener('started', (e) => {
      const { id, time } = /** @type {CustomEvent} */ (e).detail;
      state.audioStarted += 1;
      state.latency.started(id, time);
      renderMeters();
    });
    const capture = await startCapture(ctx, stream, (frame) => {
      state.latency.captured(frame.index, frame.pcm.length, frame.time);
      session.sendFrame(frame.pcm);
      ui.level.value = Math.min(1, frame.level * 4);
    });
    running = { ctx, stream, capture, player };
    await ctx.resume();
  } catch (error) {
    showError('client.audio_unsupported', String(error));
    session.close();
    stream.getTracks().forEach((t) => t.stop());
    await ctx.close();
    reset();
  }
}

/**
 * The badge next to the status: it claims the watermark only when the server announced
 * it (session.started output.watermark); otherwise it says the voice is not marked.
 * @param {{watermarked: boolean, text: string}} badge
 */
function showBadge(badge) {
  state.watermark = badge;
  ui.watermark.textContent = badge.text;
  ui.watermark.dataset.watermarked = String(badge.watermarked);
  ui.watermark.title = badge.watermarked
    ? "Every translated sample carries this server's inaudible, keyed watermark"
    : 'This server did not say that its synthesized voice is watermarked';
  ui.watermark.hidden = false;
}

/** Release the microphone and the audio graph of one run (the current one by default). */
function stopAudio(run = running) {
  if (!run) return;
  if (run === running) running = null;
  run.capture.stop();
  run.player.stop();
  run.stream.getTracks().forEach((t) => t.stop());
  run.ctx.close();
}

/** Let the player finish the speech it holds, then release the audio. */
function stopAudioWhenPlayed() {
  const run = running;
  const left = /** @type {any} */ (state.playback).bufferedMs || 0;
  if (run && left > 0) {
    running = null;
    setTimeout(() => stopAudio(run), left + 200);
  } else {
    stopAudio(run);
  }
}

function reset() {
  ui.start.disabled = false;
  ui.stop.disabled = true;
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault();
  start();
});
/** How long Stop waits for the server to deliver what was already said. */
const FINISH_TIMEOUT_MS = 20000;

ui.stop.addEventListener('click', () => {
  const session = state.session;
  ui.stop.disabled = true;
  if (!session || !running || session.ended) {
    session?.close();
    stopAudio();
    setStatus('Stopped', 'ended');
    reset();
    return;
  }
  // Stop listening at once, but lose nothing already said: on audio.end the server
  // commits, translates and speaks what is pending, then ends the session ('end').
  running.capture.stop();
  running.stream.getTracks().forEach((t) => t.stop());
  session.endInput();
  setStatus('Finishing…', 'finishing');
  const timer = setTimeout(() => {
    session.close();
    stopAudio();
    setStatus('Stopped', 'ended');
    reset();
  }, FINISH_TIMEOUT_MS);
  session.addEventListener('end', () => clearTimeout(timer), { once: true });
});
