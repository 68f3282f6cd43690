// Resampler and PCM16 framing used by the capture and playback worklets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PcmFramer, StreamingResampler, floatToPcm16, pcm16ToFloat } from '../../dragoman/web/static/lib/resampler.js';

/** @param {number} freq @param {number} rate @param {number} n */
function sine(freq, rate, n, amp = 0.5) {
  return Float32Array.from({ length: n }, (_, i) => amp * Math.sin((2 * Math.PI * freq * i) / rate));
}

/** Amplitude of `freq` in x (single-bin DFT, skipping the edges). @param {Float32Array} x */
function tone(x, freq, rate) {
  let re = 0; let im = 0;
  const a = 200; const b = x.length - 200;
  for (let i = a; i < b; i++) {
    re += x[i] * Math.cos((2 * Math.PI * freq * i) / rate);
    im += x[i] * Math.sin((2 * Math.PI * freq * i) / rate);
  }
  return (2 * Math.hypot(re, im)) / (b - a);
}

/** @param {StreamingResampler} r @param {Float32Array} x @param {number} block */
function run(r, x, block) {
  const parts = [];
  for (let i = 0; i < x.length; i += block) parts.push(r.process(x.subarray(i, i + block)));
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) { out.set(p, o); o += p.length; }
  return out;
}

test('48 kHz -> 16 kHz keeps a 1 kHz tone and produces one third of the samples', () => {
  const x = sine(1000, 48000, 48000);
  const y = run(new StreamingResampler(48000, 16000), x, 128);
  assert.ok(Math.abs(y.length - 16000) <= 20, `got ${y.length} samples`);
  assert.ok(Math.abs(tone(y, 1000, 16000) - 0.5) < 0.01);
});

test('downsampling removes content above the new Nyquist (no aliasing)', () => {
  // 12 kHz at 48 kHz would alias to 4 kHz at 16 kHz without the low-pass.
  const y = run(new StreamingResampler(48000, 16000), sine(12000, 48000, 48000), 128);
  assert.ok(tone(y, 4000, 16000) < 0.005, `alias at ${tone(y, 4000, 16000)}`);
});

test('44.1 kHz (non-integer ratio) and 24 kHz -> 48 kHz upsampling', () => {
  const y = run(new StreamingResampler(44100, 16000), sine(440, 44100, 44100), 128);
  assert.ok(Math.abs(y.length - 16000) <= 20);
  assert.ok(Math.abs(tone(y, 440, 16000) - 0.5) < 0.01);
  const z = run(new StreamingResampler(24000, 48000), sine(300, 24000, 24000), 480);
  assert.ok(Math.abs(z.length - 48000) <= 40);
  assert.ok(Math.abs(tone(z, 300, 48000) - 0.5) < 0.01);
});

test('the output does not depend on how the input is cut into blocks', () => {
  const x = sine(700, 48000, 9600);
  const a = run(new StreamingResampler(48000, 16000), x, 128);
  const b = run(new StreamingResampler(48000, 16000), x, 1000);
  const n = Math.min(a.length, b.length);
  assert.ok(n > 3100);
  for (let i = 0; i < n; i++) assert.ok(Math.abs(a[i] - b[i]) < 1e-6, `sample ${i}`);
});

test('DC passes with gain 1; equal rates pass through', () => {
  const y = run(new StreamingResampler(48000, 16000), new Float32Array(4800).fill(0.25), 128);
  for (let i = 100; i < y.length; i++) assert.ok(Math.abs(y[i] - 0.25) < 1e-5);
  const same = new StreamingResampler(16000, 16000).process(Float32Array.from([0.1, 0.2]));
  assert.deepEqual([...same], [Math.fround(0.1), Math.fround(0.2)]);
});

test('PCM16 conversion clips and rounds like the server', () => {
  assert.deepEqual([...floatToPcm16(Float32Array.from([0, 0.5, -0.5, 1, -1, 2, -2]))],
    [0, 16384, -16384, 32767, -32767, 32767, -32767]);
  assert.deepEqual([...pcm16ToFloat(Int16Array.from([16384, -32768]))], [0.5, -1]);
});

test('framer: 20 ms frames of 320 samples with running sample indices', () => {
  const f = new PcmFramer(320);
  const frames = [...f.push(new Float32Array(500)), ...f.push(new Float32Array(500))];
  assert.deepEqual(frames.map((x) => [x.index, x.pcm.length]), [[0, 320], [320, 320], [640, 320]]);
  const last = f.flush();
  assert.deepEqual(last && [last.index, last.pcm.length], [960, 40]);
  assert.equal(f.flush(), null);
});
