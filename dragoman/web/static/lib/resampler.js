// Streaming sample-rate conversion and PCM16 framing. Pure ES module: imported by the
// capture and playback AudioWorklets (off the main thread) and by `node --test`.

/**
 * Streaming band-limited resampler (Blackman-windowed sinc, any rate ratio).
 * Output sample k lies at input position k * inRate / outRate; the low-pass cut-off
 * sits just below the lower of the two Nyquist frequencies, so downsampling does not
 * alias. Kernel weights are renormalized per output sample (exact DC gain 1).
 * Latency: `halfWidth` input samples (about 1 ms for 48 kHz -> 16 kHz).
 */
export class StreamingResampler {
  /**
   * @param {number} inRate
   * @param {number} outRate
   * @param {{zeroCrossings?: number, tableResolution?: number}} [options]
   */
  constructor(inRate, outRate, options = {}) {
    if (!(inRate > 0) || !(outRate > 0)) throw new RangeError('sample rates must be positive');
    this.inRate = inRate;
    this.outRate = outRate;
    this.step = inRate / outRate;
    this.passthrough = inRate === outRate;
    // Cut-off as a fraction of the input Nyquist frequency.
    this.cutoff = Math.min(1, outRate / inRate) * 0.94;
    const zeroCrossings = options.zeroCrossings ?? 12;
    this.halfWidth = Math.ceil(zeroCrossings / this.cutoff);
    this.resolution = options.tableResolution ?? 128;
    const size = this.halfWidth * this.resolution + 2;
    this.table = new Float32Array(size);
    for (let i = 0; i < size; i++) {
      const d = i / this.resolution;
      const x = this.cutoff * d;
      const sinc = x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x);
      const w = d >= this.halfWidth ? 0
        : 0.42 + 0.5 * Math.cos(Math.PI * d / this.halfWidth) + 0.08 * Math.cos(2 * Math.PI * d / this.halfWidth);
      this.table[i] = sinc * w;
    }
    // History starts with halfWidth zeros so that output 0 is centred on input 0.
    this.buffer = new Float32Array(this.halfWidth);
    this.position = this.halfWidth; // next output time, in buffer coordinates
  }

  /**
   * Resample the next block of input; returns the output samples it completes.
   * @param {Float32Array} input
   * @returns {Float32Array}
   */
  process(input) {
    if (this.passthrough) return Float32Array.from(input);
    const merged = new Float32Array(this.buffer.length + input.length);
    merged.set(this.buffer, 0);
    merged.set(input, this.buffer.length);
    const hw = this.halfWidth;
    const count = Math.max(0, Math.floor((merged.length - hw - 1 - this.position) / this.step) + 1);
    const out = new Float32Array(count);
    let pos = this.position;
    const res = this.resolution;
    const table = this.table;
    for (let k = 0; k < count; k++) {
      const centre = Math.floor(pos);
      const frac = pos - centre;
      let acc = 0;
      let norm = 0;
      const first = centre - hw + 1;
      for (let n = first; n <= centre + hw; n++) {
        const d = Math.abs(n - centre - frac) * res;
        const i = Math.floor(d);
        const t = d - i;
        const w = table[i] + (table[i + 1] - table[i]) * t;
        acc += merged[n] * w;
        norm += w;
      }
      out[k] = norm !== 0 ? acc / norm : 0;
      pos += this.step;
    }
    // Keep what the next outputs still need.
    const keepFrom = Math.max(0, Math.floor(pos) - hw + 1);
    this.buffer = merged.slice(keepFrom);
    this.position = pos - keepFrom;
    return out;
  }
}

/**
 * Float samples in [-1, 1] to PCM16 (clipped, rounded half to even like numpy in the
 * server's encode_pcm16).
 * @param {Float32Array} samples
 * @returns {Int16Array}
 */
export function floatToPcm16(samples) {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const v = Math.max(-1, Math.min(1, samples[i])) * 32767;
    const r = Math.round(v);
    out[i] = r - v === 0.5 && r % 2 !== 0 ? r - 1 : r; // Math.round sends .5 up; numpy to even
  }
  return out;
}

/**
 * PCM16 to float samples (x / 32768, like the server's pcm16_to_float).
 * @param {Int16Array} pcm
 * @returns {Float32Array}
 */
export function pcm16ToFloat(pcm) {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
  return out;
}

/**
 * Cuts a float stream into fixed-size PCM16 frames (20 ms at 16 kHz: 320 samples).
 * `index` of a frame is the 16 kHz sample index of its first sample since the start.
 */
export class PcmFramer {
  /** @param {number} frameSamples */
  constructor(frameSamples) {
    if (!(frameSamples > 0)) throw new RangeError('frameSamples must be positive');
    this.frameSamples = frameSamples;
    this.pending = new Float32Array(frameSamples);
    this.fill = 0;
    this.emitted = 0;
  }

  /**
   * @param {Float32Array} samples
   * @returns {{index: number, pcm: Int16Array}[]}
   */
  push(samples) {
    /** @type {{index: number, pcm: Int16Array}[]} */
    const frames = [];
    let offset = 0;
    while (offset < samples.length) {
      const take = Math.min(this.frameSamples - this.fill, samples.length - offset);
      this.pending.set(samples.subarray(offset, offset + take), this.fill);
      this.fill += take;
      offset += take;
      if (this.fill === this.frameSamples) {
        frames.push({ index: this.emitted, pcm: floatToPcm16(this.pending) });
        this.emitted += this.frameSamples;
        this.fill = 0;
      }
    }
    return frames;
  }

  /** The partial last frame, if any (end of input). @returns {{index: number, pcm: Int16Array} | null} */
  flush() {
    if (this.fill === 0) return null;
    const frame = { index: this.emitted, pcm: floatToPcm16(this.pending.subarray(0, this.fill)) };
    this.emitted += this.fill;
    this.fill = 0;
    return frame;
  }
}
