// Offscreen document: owns the AudioContext and the Dragoman sessions (one per tab,
// plus an optional microphone session published in a room). Captions go to the tab's
// content script over its port; translated speech plays here, with the tab's own audio
// ducked while it speaks.
import { CaptionTrack, describeError } from './lib/protocol.js';
import { DragomanSession, endProblem } from './lib/client.js';
import { LatencyMeter, Player, startCapture } from './lib/audio.js';

/** Gain of the meeting's own audio while the translation speaks (ducking). */
const DUCK_GAIN = 0.2;

/** Seconds on a clock shared by every context of this machine. */
const wallSeconds = () => (performance.timeOrigin + performance.now()) / 1000;

/** @type {AudioContext | null} */
let ctx = null;
function context() {
  if (!ctx) ctx = new AudioContext({ latencyHint: 'interactive' });
  return ctx;
}

/** @param {AudioContext} c @param {number} time context time -> wall seconds */
const toWall = (c, time) => wallSeconds() + (time - c.currentTime);

/**
 * @typedef {object} TabRun
 * @property {DragomanSession} session
 * @property {CaptionTrack} source
 * @property {CaptionTrack} target
 * @property {LatencyMeter} latency
 * @property {Player} player
 * @property {chrome.runtime.Port | null} port
 * @property {MediaStream | null} stream
 * @property {any} capture
 * @property {GainNode | null} duck
 * @property {boolean} duckEnabled
 * @property {Record<string, any>} status
 */

/** @type {Map<number, TabRun>} */
const tabs = new Map();
/** @type {Map<number, chrome.runtime.Port>} */
const ports = new Map();

/** @param {TabRun} run */
function publish(run) {
  const l = run.latency.summary();
  run.port?.postMessage({
    type: 'captions', source: run.source.lines.slice(-3), target: run.target.lines.slice(-3),
    status: { ...run.status, latency: l.median, audioChunks: run.player.chunks },
  });
}

/** @param {number} tabId @param {any} settings @param {string} mode @param {string | null} streamId */
async function start(tabId, settings, mode, streamId) {
  await stop(tabId);
  const c = context();
  await c.resume();
  const session = new DragomanSession({
    url: settings.server, token: settings.token || undefined,
    start: { source: settings.source, targets: [settings.target], speak: settings.speak !== false },
  });
  const duck = c.createGain();
  duck.connect(c.destination);
  const player = new Player(c);
  await player.init();
  /** @type {TabRun} */
  const run = {
    session, player, duck, duckEnabled: Boolean(settings.duck), port: ports.get(tabId) || null,
    source: new CaptionTrack({ kind: 'source' }),
    target: new CaptionTrack({ kind: 'translation', language: settings.target }),
    latency: new LatencyMeter(), stream: null, capture: null,
    status: { state: 'connecting', error: null, mode, target: settings.target },
  };
  tabs.set(tabId, run);
  session.addEventListener('state', (e) => { run.status.state = /** @type {CustomEvent} */ (e).detail.state; publish(run); });
  session.addEventListener('message', (e) => {
    const m = /** @type {CustomEvent} */ (e).detail;
    if (run.source.apply(m) || run.target.apply(m)) publish(run);
  });
  session.addEventListener('notice', (e) => {
    const n = /** @type {CustomEvent} */ (e).detail;
    run.status.notice = describeError(n.code, n.message);
    publish(run);
  });
  session.addEventListener('audio', (e) => {
    const frame = /** @type {CustomEvent} */ (e).detail;
    if (frame.language !== settings.target) return;
    run.latency.queued(frame.seq, frame.sourceEnd, frame.language, wallSeconds());
    // What the server announced in session.started, not an assumption.
    run.status.badge = session.badge.text;
    player.push(frame);
  });
  session.addEventListener('end', (e) => {
    const problem = endProblem(/** @type {CustomEvent} */ (e).detail);
    if (problem) run.status.error = problem;
    publish(run);
  });
  player.addEventListener('started', (e) => {
    const { id, time } = /** @type {CustomEvent} */ (e).detail;
    run.latency.started(id, toWall(c, time));
  });
  player.addEventListener('stats', (e) => {
    const s = /** @type {CustomEvent} */ (e).detail;
    if (run.duckEnabled) duck.gain.setTargetAtTime(s.playing ? DUCK_GAIN : 1, c.currentTime, 0.05);
    if (s.playing !== run.status.playing) {
      run.status.playing = s.playing;
      run.status.ducked = run.duckEnabled && s.playing;
      if (run.status.ducked) run.status.duckedEver = true;
      run.port?.postMessage({ type: 'playing', playing: s.playing, duck: run.duckEnabled });
      publish(run);
    }
  });

  try {
    await session.open();
  } catch (error) {
    const err = /** @type {any} */ (error);
    run.status.error = { code: err.code, message: describeError(err.code, err.message) };
    publish(run);
    await stop(tabId);
    return { ok: false, error: run.status.error };
  }
  if (mode === 'tab') {
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        audio: /** @type {any} */ ({ mandatory: { chromeMediaSource: 'tab', chromeMediaSourceId: streamId } }),
        video: false,
      });
    } catch (error) {
      run.status.error = { code: 'client.capture_failed', message: `Cannot capture this tab's audio: ${error}` };
      publish(run);
      await stop(tabId);
      return { ok: false, error: run.status.error };
    }
    run.stream = stream;
    // Capturing a tab silences it for the user: route it back out, through the ducker.
    c.createMediaStreamSource(stream).connect(duck);
    run.capture = await startCapture(c, stream, (frame) => {
      run.latency.captured(frame.index, frame.pcm.length, toWall(c, frame.time));
      session.sendFrame(frame.pcm);
    });
  }
  publish(run);
  return { ok: true, sessionId: session.info?.session_id };
}

/** @param {number} tabId */
async function stop(tabId) {
  const run = tabs.get(tabId);
  if (!run) return;
  tabs.delete(tabId);
  run.session.close();
  run.capture?.stop();
  run.player.stop();
  run.duck?.disconnect();
  run.stream?.getTracks().forEach((t) => t.stop());
}

/** @type {{session: DragomanSession, stream: MediaStream, capture: any, status: Record<string, any>} | null} */
let mic = null;

/** Publish the user's microphone as a speaker in a Dragoman room. @param {any} settings */
async function startMic(settings) {
  if (mic) return { ok: true, sessionId: mic.session.info?.session_id };
  if (!settings.room) return { ok: false, error: 'set a room in the options first' };
  const c = context();
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true } });
  } catch {
    return { ok: false, error: describeError('client.mic_denied') };
  }
  const session = new DragomanSession({
    url: settings.server, token: settings.token || undefined,
    start: { source: settings.micSource, targets: [], room: settings.room, role: 'speaker', name: settings.name || undefined },
  });
  try {
    await session.open();
  } catch (error) {
    stream.getTracks().forEach((t) => t.stop());
    const err = /** @type {any} */ (error);
    return { ok: false, error: describeError(err.code, err.message) };
  }
  await c.resume();
  const capture = await startCapture(c, stream, (frame) => session.sendFrame(frame.pcm));
  const run = { session, stream, capture, status: { state: 'open', room: settings.room, error: null } };
  mic = run;
  session.addEventListener('state', (e) => { run.status.state = /** @type {CustomEvent} */ (e).detail.state; });
  session.addEventListener('end', (e) => {
    run.status.error = endProblem(/** @type {CustomEvent} */ (e).detail);
    if (mic === run) stopMic();
  });
  return { ok: true, sessionId: session.info?.session_id };
}

/** Stop publishing the microphone. */
function stopMic() {
  if (!mic) return { ok: true };
  const { session, stream, capture } = mic;
  mic = null;
  capture.stop();
  stream.getTracks().forEach((t) => t.stop());
  session.close();
  return { ok: true };
}

chrome.runtime.onConnect.addListener((port) => {
  if (port.name !== 'dragoman-tab') return;
  const tabId = port.sender?.tab?.id;
  if (tabId === undefined) return;
  ports.set(tabId, port);
  const run = tabs.get(tabId);
  if (run) { run.port = port; publish(run); }
  port.onMessage.addListener((m) => {
    const r = tabs.get(tabId);
    if (!r || m.type !== 'frame') return;
    // Element capture in the page ('element' mode): frames arrive from the content script.
    const pcm = Int16Array.from(m.pcm);
    r.latency.captured(m.index, pcm.length, m.at);
    r.session.sendFrame(pcm);
  });
  port.onDisconnect.addListener(() => {
    if (ports.get(tabId) === port) ports.delete(tabId);
    stop(tabId);
  });
});

chrome.runtime.onMessage.addListener((message, _sender, sendResponse) => {
  if (message?.to !== 'offscreen') return false;
  const run = async () => {
    if (message.cmd === 'start') return start(message.tabId, message.settings, message.mode, message.streamId);
    if (message.cmd === 'stop') return stop(message.tabId);
    if (message.cmd === 'mic') return startMic(message.settings);
    if (message.cmd === 'mic-stop') return stopMic();
    if (message.cmd === 'mic-status') return { ok: true, active: Boolean(mic), status: mic?.status ?? null };
    return null;
  };
  run().then((r) => sendResponse(r ?? { ok: true }), (e) => sendResponse({ ok: false, error: String(e?.message || e) }));
  return true;
});
