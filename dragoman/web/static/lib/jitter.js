// Jitter buffer for translated speech: pure ES module used by the playback AudioWorklet
// and by `node --test`. Time is counted in output samples (the AudioContext's rate).

/**
 * @typedef {object} Segment
 * @property {Float32Array} samples  at the output rate
 * @property {number} id             server seq of the chunk (reported when it starts)
 * @property {number} offset         samples already played
 * @property {number} arrived        output-sample clock when it was queued
 */

/**
 * Speech chunks arrive in bursts (a phrase is synthesized faster than real time) and
 * with network jitter. Playback starts once `prebuffer` samples are queued (or the
 * oldest chunk has waited `maxWait`, so a short last phrase is not held back), then
 * plays continuously until the queue runs dry (silence, buffer again). Running dry at
 * the end of a phrase is normal; when the next chunk arrives within `underrunGap` of
 * running dry, the gap was jitter: count an underrun and grow the prebuffer by
 * `growth` (up to `maxPrebuffer`).
 */
export class JitterBuffer {
  /**
   * @param {{rate: number, prebufferMs?: number, maxPrebufferMs?: number, growthMs?: number,
   *          maxWaitMs?: number, underrunGapMs?: number}} o
   */
  constructor(o) {
    this.rate = o.rate;
    this.prebuffer = Math.round((o.prebufferMs ?? 120) * o.rate / 1000);
    this.maxPrebuffer = Math.round((o.maxPrebufferMs ?? 480) * o.rate / 1000);
    this.growth = Math.round((o.growthMs ?? 60) * o.rate / 1000);
    this.maxWait = Math.round((o.maxWaitMs ?? 200) * o.rate / 1000);
    this.underrunGap = Math.round((o.underrunGapMs ?? 150) * o.rate / 1000);
    /** @type {number | null} output clock when the queue last ran dry while playing */
    this.dryAt = null;
    /** @type {Segment[]} */
    this.queue = [];
    this.queued = 0;
    this.playing = false;
    this.underruns = 0;
    this.clock = 0; // output samples rendered so far
    this.played = 0; // speech samples played so far
  }

  /** @param {Float32Array} samples @param {number} id */
  push(samples, id) {
    if (samples.length === 0) return;
    if (this.dryAt !== null && this.clock - this.dryAt < this.underrunGap) {
      this.underruns += 1;
      this.prebuffer = Math.min(this.maxPrebuffer, this.prebuffer + this.growth);
    }
    this.dryAt = null;
    this.queue.push({ samples, id, offset: 0, arrived: this.clock });
    this.queued += samples.length;
  }

  /** Drop everything queued (e.g. when the listener switches language). */
  clear() {
    this.queue = [];
    this.queued = 0;
    this.playing = false;
  }

  /** Buffered speech in milliseconds. @returns {number} */
  bufferedMs() {
    return (1000 * this.queued) / this.rate;
  }

  /**
   * Fill `out` with the next samples; returns the ids of chunks whose first sample was
   * written, with the offset inside `out` where each began.
   * @param {Float32Array} out
   * @returns {{id: number, at: number}[]}
   */
  render(out) {
    /** @type {{id: number, at: number}[]} */
    const started = [];
    out.fill(0);
    if (!this.playing && this.queue.length) {
      const waited = this.clock - this.queue[0].arrived;
      if (this.queued >= this.prebuffer || waited >= this.maxWait) this.playing = true;
    }
    let written = 0;
    while (this.playing && written < out.length) {
      const head = this.queue[0];
      if (!head) break;
      if (head.offset === 0) started.push({ id: head.id, at: written });
      const take = Math.min(out.length - written, head.samples.length - head.offset);
      out.set(head.samples.subarray(head.offset, head.offset + take), written);
      head.offset += take;
      written += take;
      this.queued -= take;
      this.played += take;
      if (head.offset === head.samples.length) this.queue.shift();
    }
    if (this.playing && this.queue.length === 0) {
      this.playing = false;
      this.dryAt = this.clock + written;
    }
    this.clock += out.length;
    return started;
  }
}
