// The playback jitter buffer and the latency meter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { JitterBuffer } from '../../dragoman/web/static/lib/jitter.js';
import { LatencyMeter } from '../../dragoman/web/static/lib/audio.js';

const RATE = 48000;
const Q = 128; // render quantum

test('waits for the prebuffer, then plays chunks back to back and reports starts', () => {
  const jb = new JitterBuffer({ rate: RATE, prebufferMs: 100 });
  const out = new Float32Array(Q);
  jb.push(new Float32Array(2400).fill(0.1), 1); // 50 ms: not enough yet
  assert.deepEqual(jb.render(out), []);
  assert.equal(out[0], 0);
  jb.push(new Float32Array(4800).fill(0.2), 2); // 150 ms queued
  const starts = [];
  let first = -1;
  for (let q = 0; q < 60; q++) {
    for (const s of jb.render(out)) starts.push({ id: s.id, at: q * Q + s.at });
    if (first < 0 && out[0] !== 0) first = q;
  }
  assert.deepEqual(starts.map((s) => s.id), [1, 2]);
  assert.equal(starts[1].at - starts[0].at, 2400, 'no gap between chunks');
  assert.equal(jb.underruns, 0);
  assert.equal(jb.played, 7200);
});

test('a short last phrase is not held back forever (maxWait)', () => {
  const jb = new JitterBuffer({ rate: RATE, prebufferMs: 200, maxWaitMs: 50 });
  const out = new Float32Array(Q);
  jb.push(new Float32Array(480).fill(0.3), 7);
  let started = -1;
  for (let q = 0; q < 40 && started < 0; q++) if (jb.render(out).length) started = q * Q;
  assert.ok(started >= 2400 && started < 2400 + 2 * Q, `started at ${started}`);
});

test('running dry then getting audio at once counts an underrun and grows the prebuffer', () => {
  const jb = new JitterBuffer({ rate: RATE, prebufferMs: 20, growthMs: 40, underrunGapMs: 150 });
  const out = new Float32Array(Q);
  jb.push(new Float32Array(1920), 1);
  for (let q = 0; q < 20; q++) jb.render(out);
  const before = jb.prebuffer;
  jb.push(new Float32Array(1920), 2); // right after running dry: jitter
  assert.equal(jb.underruns, 1);
  assert.equal(jb.prebuffer, before + 1920);
  for (let q = 0; q < 200; q++) jb.render(out); // a long pause: end of a phrase
  jb.push(new Float32Array(1920), 3);
  assert.equal(jb.underruns, 1);
});

test('latency meter: capture time of a source sample to the start of its translation', () => {
  const m = new LatencyMeter();
  for (let i = 0; i < 100; i++) m.captured(320 * i, 320, 1 + (i + 1) * 0.02); // 20 ms frames
  assert.ok(Math.abs(/** @type {number} */ (m.captureTime(16000)) - 2.0) < 1e-9);
  m.queued(5, 16000, 'fr');
  assert.ok(Math.abs(/** @type {number} */ (m.started(5, 4.5)) - 2.5) < 1e-9);
  assert.equal(m.started(6, 5), null);
  assert.equal(m.summary().count, 1);
});

test('latency meter: chunks continuing a phrase (same source end) are logged, not counted', () => {
  const m = new LatencyMeter();
  for (let i = 0; i < 200; i++) m.captured(320 * i, 320, (i + 1) * 0.02);
  m.queued(1, 16000, 'fr', 2.5); // source end captured at 1.0 s, arrived at 2.5 s, plays at 3.0 s
  m.queued(2, 16000, 'fr'); // same phrase, plays 0.2 s later
  m.queued(3, 32000, 'fr'); // the next source words
  m.started(1, 3.0);
  m.started(2, 3.2);
  m.started(3, 5.0);
  assert.deepEqual(m.log.map((e) => [e.id, e.first]), [[1, true], [2, false], [3, true]]);
  assert.ok(Math.abs(/** @type {number} */ (m.log[0].arrival) - 1.5) < 1e-9);
  assert.equal(m.log[1].arrival, null);
  assert.deepEqual(m.samples.map((x) => Math.round(x * 1000)), [2000, 3000]);
  assert.equal(m.summary().count, 2);
});
