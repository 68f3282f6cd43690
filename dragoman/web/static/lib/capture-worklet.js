// AudioWorklet: microphone (or tab) audio -> mono -> 16 kHz -> 20 ms PCM16 frames.
// Runs on the audio rendering thread; the main thread only forwards finished frames.
import { StreamingResampler, PcmFramer } from './resampler.js';

class DragomanCapture extends AudioWorkletProcessor {
  /** @param {{processorOptions?: {outRate?: number, frameSamples?: number}}} options */
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    // `sampleRate` and `currentTime` are globals of the AudioWorklet scope.
    this.resampler = new StreamingResampler(sampleRate, o.outRate ?? 16000);
    this.framer = new PcmFramer(o.frameSamples ?? 320);
    this.paused = false;
    this.port.onmessage = (event) => {
      if (event.data?.type === 'pause') this.paused = Boolean(event.data.paused);
      if (event.data?.type === 'flush') {
        const last = this.framer.flush();
        if (last) this.post(last, 0);
        this.port.postMessage({ type: 'flushed' });
      }
    };
  }

  /** @param {{index: number, pcm: Int16Array}} frame @param {number} level */
  post(frame, level) {
    const buffer = frame.pcm.buffer;
    this.port.postMessage({ type: 'frame', index: frame.index, pcm: buffer, level, time: currentTime },
      [buffer]);
  }

  /** @param {Float32Array[][]} inputs */
  process(inputs) {
    const channels = inputs[0];
    if (!channels || channels.length === 0 || this.paused) return true;
    const n = channels[0].length;
    const mono = new Float32Array(n);
    for (const channel of channels) for (let i = 0; i < n; i++) mono[i] += channel[i];
    let energy = 0;
    for (let i = 0; i < n; i++) {
      mono[i] /= channels.length;
      energy += mono[i] * mono[i];
    }
    const level = Math.sqrt(energy / Math.max(1, n));
    for (const frame of this.framer.push(this.resampler.process(mono))) this.post(frame, level);
    return true;
  }
}

registerProcessor('dragoman-capture', DragomanCapture);
