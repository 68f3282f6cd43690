// Browser audio around the worklets: capture (any MediaStream -> 16 kHz PCM16 frames),
// playback (translated speech through the jitter buffer) and the latency read-out.
// Shared by the web page and the extension's offscreen document.
import { FRAME_SAMPLES, INPUT_RATE } from './protocol.js';

const CAPTURE_URL = new URL('./capture-worklet.js', import.meta.url).href;
const PLAYER_URL = new URL('./player-worklet.js', import.meta.url).href;

/** @type {WeakMap<BaseAudioContext, Promise<void>>} */
const loaded = new WeakMap();

/**
 * Load both worklet modules into a context (once).
 * @param {BaseAudioContext} ctx
 */
export function loadWorklets(ctx) {
  if (!ctx.audioWorklet) {
    return Promise.reject(Object.assign(new Error('AudioWorklet is not available'),
      { code: 'client.audio_unsupported' }));
  }
  let p = loaded.get(ctx);
  if (!p) {
    p = Promise.all([ctx.audioWorklet.addModule(CAPTURE_URL), ctx.audioWorklet.addModule(PLAYER_URL)])
      .then(() => undefined);
    loaded.set(ctx, p);
  }
  return p;
}

/**
 * @typedef {object} CapturedFrame
 * @property {number} index  16 kHz sample index of the first sample since capture start
 * @property {Int16Array} pcm
 * @property {number} time   context time when the frame was complete
 * @property {number} level  RMS of the last render quantum
 */

/**
 * Capture a MediaStream (microphone, tab, or an element's captureStream()) as 20 ms
 * PCM16 frames at 16 kHz, produced on the audio thread.
 * @param {AudioContext} ctx
 * @param {MediaStream} stream
 * @param {(frame: CapturedFrame) => void} onFrame
 */
export async function startCapture(ctx, stream, onFrame) {
  await loadWorklets(ctx);
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, 'dragoman-capture', {
    numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { outRate: INPUT_RATE, frameSamples: FRAME_SAMPLES },
  });
  node.port.onmessage = (event) => {
    const m = event.data;
    if (m.type === 'frame') onFrame({ index: m.index, pcm: new Int16Array(m.pcm), time: m.time, level: m.level });
  };
  // Keep the node pulled by the graph without making it audible.
  const mute = ctx.createGain();
  mute.gain.value = 0;
  source.connect(node);
  node.connect(mute).connect(ctx.destination);
  return {
    source,
    node,
    /** @param {boolean} paused */
    pause(paused) { node.port.postMessage({ type: 'pause', paused }); },
    stop() {
      source.disconnect();
      node.disconnect();
      mute.disconnect();
      node.port.onmessage = null;
    },
  };
}

/**
 * Maps 16 kHz sample indices of the captured input to the context time at which they
 * were captured, and measures, for each translated chunk, the time from the end of the
 * source speech it translates (`sourceEnd`) leaving the capture to its first sample
 * playing. Both ends are read on the same AudioContext clock.
 *
 * A phrase is synthesized into several chunks that share one `sourceEnd` and play back
 * to back: only the first of them says when the translation of those source words
 * started to play (the others start later by the length of the phrase so far). The
 * read-out (`samples`, `summary()`) counts that first chunk per source span; `log` keeps
 * every chunk, with `first` set on those.
 */
export class LatencyMeter {
  /** @param {{keepSeconds?: number}} [o] */
  constructor(o = {}) {
    this.keep = Math.round(((o.keepSeconds ?? 120) * INPUT_RATE) / FRAME_SAMPLES);
    /** @type {{end: number, time: number}[]} */
    this.frames = [];
    /** @type {Map<number, {sourceEnd: number, language: string, arrived: number | null}>} */
    this.pending = new Map();
    /** @type {number[]} seconds */
    this.samples = [];
    /** @type {{id: number, sourceEnd: number, latency: number, arrival: number | null, first: boolean}[]} */
    this.log = [];
    /** @type {Map<string, number>} sourceEnd of the last chunk started, per language */
    this.lastEnd = new Map();
  }

  /** @param {number} index @param {number} length @param {number} time */
  captured(index, length, time) {
    this.frames.push({ end: index + length, time });
    if (this.frames.length > this.keep) this.frames.splice(0, this.frames.length - this.keep);
  }

  /** Context time when input sample `sample` was captured (null if unknown). @param {number} sample */
  captureTime(sample) {
    const f = this.frames;
    if (!f.length || sample < f[0].end - FRAME_SAMPLES || sample > f[f.length - 1].end) return null;
    let lo = 0;
    let hi = f.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (f[mid].end < sample) lo = mid + 1; else hi = mid;
    }
    return f[lo].time - (f[lo].end - sample) / INPUT_RATE;
  }

  /**
   * A chunk arrived (at context time `arrived`, if given: the log then also says how
   * much of the latency was spent before it reached the page).
   * @param {number} id @param {number} sourceEnd @param {string} language @param {number} [arrived]
   */
  queued(id, sourceEnd, language, arrived) {
    this.pending.set(id, { sourceEnd, language, arrived: arrived ?? null });
  }

  /**
   * A chunk's first sample is playing at context time `time`; returns the latency (s).
   * @param {number} id @param {number} time
   * @returns {number | null}
   */
  started(id, time) {
    const chunk = this.pending.get(id);
    this.pending.delete(id);
    if (!chunk) return null;
    const first = this.lastEnd.get(chunk.language) !== chunk.sourceEnd;
    this.lastEnd.set(chunk.language, chunk.sourceEnd);
    const at = this.captureTime(chunk.sourceEnd);
    if (at === null) return null;
    const latency = time - at;
    if (first) this.samples.push(latency);
    const arrival = chunk.arrived === null ? null : chunk.arrived - at;
    this.log.push({ id, sourceEnd: chunk.sourceEnd, latency, arrival, first });
    if (this.samples.length > 500) this.samples.shift();
    if (this.log.length > 500) this.log.shift();
    return latency;
  }

  /** Over the first chunk of each source span. @returns {{last: number | null, median: number | null, count: number}} */
  summary() {
    const s = [...this.samples].sort((a, b) => a - b);
    return {
      last: this.samples.length ? this.samples[this.samples.length - 1] : null,
      median: s.length ? s[Math.floor(s.length / 2)] : null,
      count: s.length,
    };
  }
}

/**
 * Plays translated speech of one language through the jitter-buffer worklet.
 * Events: 'started' {id, time}, 'stats' {playing, bufferedMs, underruns, prebufferMs, playedMs}.
 */
export class Player extends EventTarget {
  /** @param {AudioContext} ctx @param {{destination?: AudioNode, prebufferMs?: number}} [o] */
  constructor(ctx, o = {}) {
    super();
    this.ctx = ctx;
    this.destination = o.destination ?? ctx.destination;
    this.prebufferMs = o.prebufferMs ?? 120;
    /** @type {AudioWorkletNode | null} */
    this.node = null;
    this.stats = { playing: false, bufferedMs: 0, underruns: 0, prebufferMs: this.prebufferMs, playedMs: 0 };
    this.chunks = 0;
  }

  async init() {
    await loadWorklets(this.ctx);
    const node = new AudioWorkletNode(this.ctx, 'dragoman-player', {
      numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
      processorOptions: { prebufferMs: this.prebufferMs },
    });
    node.port.onmessage = (event) => {
      const m = event.data;
      if (m.type === 'stats') {
        this.stats = m;
        this.dispatchEvent(new CustomEvent('stats', { detail: m }));
      } else if (m.type === 'started') {
        this.dispatchEvent(new CustomEvent('started', { detail: m }));
      }
    };
    node.connect(this.destination);
    this.node = node;
  }

  /** @param {import('./protocol.js').AudioFrame} frame */
  push(frame) {
    if (!this.node) return;
    this.chunks += 1;
    const pcm = frame.pcm.slice();
    this.node.port.postMessage({ type: 'chunk', id: frame.seq, rate: frame.sampleRate, pcm: pcm.buffer },
      [pcm.buffer]);
  }

  clear() { this.node?.port.postMessage({ type: 'clear' }); }

  stop() {
    this.node?.disconnect();
    if (this.node) this.node.port.onmessage = null;
    this.node = null;
  }
}
