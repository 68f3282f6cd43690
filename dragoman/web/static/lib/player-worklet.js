// AudioWorklet: translated speech (PCM16 at the server's rate) -> resampled to the
// context rate -> jitter buffer -> output. Reports when each chunk starts playing.
import { StreamingResampler, pcm16ToFloat } from './resampler.js';
import { JitterBuffer } from './jitter.js';

class DragomanPlayer extends AudioWorkletProcessor {
  /** @param {{processorOptions?: {prebufferMs?: number}}} options */
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.buffer = new JitterBuffer({ rate: sampleRate, prebufferMs: o.prebufferMs ?? 120 });
    /** @type {Map<number, StreamingResampler>} */
    this.resamplers = new Map();
    this.wasPlaying = false;
    this.lastStats = 0;
    this.port.onmessage = (event) => {
      const m = event.data;
      if (m?.type === 'chunk') {
        let resampler = this.resamplers.get(m.rate);
        if (!resampler) {
          resampler = new StreamingResampler(m.rate, sampleRate);
          this.resamplers.set(m.rate, resampler);
        }
        this.buffer.push(resampler.process(pcm16ToFloat(new Int16Array(m.pcm))), m.id);
      } else if (m?.type === 'clear') {
        this.buffer.clear();
      }
    };
  }

  /** @param {Float32Array[][]} _inputs @param {Float32Array[][]} outputs */
  process(_inputs, outputs) {
    const out = outputs[0];
    if (!out || out.length === 0) return true;
    const started = this.buffer.render(out[0]);
    for (let c = 1; c < out.length; c++) out[c].set(out[0]);
    for (const s of started) {
      this.port.postMessage({ type: 'started', id: s.id, time: currentTime + s.at / sampleRate });
    }
    const playing = this.buffer.playing;
    if (playing !== this.wasPlaying || currentTime - this.lastStats >= 0.1) {
      this.wasPlaying = playing;
      this.lastStats = currentTime;
      this.port.postMessage({
        type: 'stats', playing, bufferedMs: this.buffer.bufferedMs(), underruns: this.buffer.underruns,
        prebufferMs: (1000 * this.buffer.prebuffer) / sampleRate, playedMs: (1000 * this.buffer.played) / sampleRate,
        time: currentTime,
      });
    }
    return true;
  }
}

registerProcessor('dragoman-player', DragomanPlayer);
