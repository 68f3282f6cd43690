// DragomanSession against a scripted fake WebSocket: start, seq de-duplication, acks,
// refusals, and resume with re-sending of the audio the server did not receive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DragomanError, DragomanSession, endProblem } from '../../dragoman/web/static/lib/client.js';
import { encodeAudioFrame } from '../../dragoman/web/static/lib/protocol.js';

/** @type {FakeSocket[]} */
let sockets = [];
/** @type {(ws: FakeSocket, message: any) => void} */
let server = () => {};

class FakeSocket {
  /** @param {string} url */
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    /** @type {any[]} */
    this.sent = [];
    /** @type {any} */ this.onopen = null;
    /** @type {any} */ this.onmessage = null;
    /** @type {any} */ this.onclose = null;
    /** @type {any} */ this.onerror = null;
    sockets.push(this);
    setTimeout(() => { this.readyState = 1; this.onopen?.(); }, 0);
  }

  /** @param {any} data */
  send(data) {
    this.sent.push(data);
    if (typeof data === 'string') server(this, JSON.parse(data));
  }

  /** @param {any} data */
  deliver(data) { this.onmessage?.({ data: typeof data === 'string' ? data : data }); }

  close(code = 1000, reason = '') {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code, reason }), 0);
  }
}

const tick = () => new Promise((r) => setTimeout(r, 5));
const started = (/** @type {number} */ seq) => JSON.stringify({ type: 'session.started', seq, session_id: 's_1',
  resume_token: 'rt', limits: { resume_grace: 5 } });

/** @param {Partial<import('../../dragoman/web/static/lib/client.js').SessionOptions>} [o] */
function session(o = {}) {
  return new DragomanSession({ url: 'ws://x/v1', token: 'dk_secret', start: { source: 'es', targets: ['fr'] },
    WebSocketImpl: /** @type {any} */ (FakeSocket), probe: async () => false, ...o });
}

test('starts, de-duplicates by seq, acks every 32 messages', async () => {
  sockets = [];
  server = (ws, m) => { if (m.type === 'session.start') ws.deliver(started(1)); };
  const s = session();
  const info = await s.open();
  assert.equal(info.session_id, 's_1');
  const hello = JSON.parse(sockets[0].sent[0]);
  assert.equal(hello.token, 'dk_secret');
  const got = [];
  s.addEventListener('message', (e) => got.push(/** @type {CustomEvent} */ (e).detail.seq));
  for (let seq = 2; seq <= 40; seq++) sockets[0].deliver(JSON.stringify({ type: 'lag', seq }));
  sockets[0].deliver(JSON.stringify({ type: 'lag', seq: 5 })); // replayed: dropped
  assert.equal(got.length, 39);
  const acks = sockets[0].sent.filter((d) => typeof d === 'string' && JSON.parse(d).type === 'ack');
  assert.deepEqual(acks.map((a) => JSON.parse(a).seq), [32]);
});

test('a refused start rejects with the server code (bad token)', async () => {
  sockets = [];
  server = (ws, m) => {
    if (m.type === 'session.start') {
      ws.deliver(JSON.stringify({ type: 'error', code: 'unauthorized', message: 'a valid API key is required', fatal: true, seq: 0 }));
      ws.close(1008, 'unauthorized');
    }
  };
  await assert.rejects(session().open(), (e) => /** @type {any} */ (e).code === 'unauthorized');
});

test('nobody listening: client.server_unreachable', async () => {
  sockets = [];
  server = () => {};
  class Dead extends FakeSocket {
    constructor(/** @type {string} */ url) { super(url); this.close(1006, ''); }
  }
  let tries = 0;
  class Counted extends Dead {
    constructor(/** @type {string} */ url) { tries += 1; super(url); }
  }
  await assert.rejects(session({ WebSocketImpl: /** @type {any} */ (Counted) }).open(),
    (e) => /** @type {any} */ (e).code === 'client.server_unreachable');
  assert.equal(tries, 3);  // tried again twice before giving up
  tries = 0;
  await assert.rejects(session({ WebSocketImpl: /** @type {any} */ (Counted), probe: async () => true }).open(),
    (e) => /** @type {any} */ (e).code === 'origin_not_allowed');
  assert.equal(tries, 1);  // a refusal is not tried again
});

test('a server unreachable at the first try is reached at the next', async () => {
  sockets = [];
  server = (ws, m) => { if (m.type === 'session.start') ws.deliver(started(1)); };
  let tries = 0;
  class Flaky extends FakeSocket {
    constructor(/** @type {string} */ url) {
      super(url);
      tries += 1;
      if (tries === 1) {  // refused: nothing reaches the server
        this.send = () => {};
        this.close(1006, '');
      }
    }
  }
  const info = await session({ WebSocketImpl: /** @type {any} */ (Flaky) }).open();
  assert.equal(info.type, 'session.started');
  assert.equal(tries, 2);
});

test('resumes after a drop and re-sends only the audio the server missed', async () => {
  sockets = [];
  server = (ws, m) => {
    if (m.type === 'session.start') ws.deliver(started(1));
    if (m.type === 'session.resume') {
      assert.deepEqual([m.session_id, m.resume_token, m.last_seq], ['s_1', 'rt', 3]);
      ws.deliver(JSON.stringify({ type: 'session.resumed', seq: 0, audio_received_samples: 400 }));
    }
  };
  const s = session();
  await s.open();
  const audio = [];
  s.addEventListener('audio', (e) => audio.push(/** @type {CustomEvent} */ (e).detail.seq));
  const frame = (/** @type {number} */ seq) => encodeAudioFrame({ seq, speaker: 0, language: 'fr', sampleRate: 24000,
    pts: 0, sourceStart: 0, sourceEnd: 320, pcm: new Int16Array(4) });
  sockets[0].deliver(frame(2));
  sockets[0].deliver(frame(3));
  for (let i = 0; i < 3; i++) s.sendFrame(new Int16Array(320).fill(i + 1));
  sockets[0].close(1006, '');
  await tick();
  s.sendFrame(new Int16Array(320).fill(9)); // captured while disconnected
  for (let i = 0; i < 50 && s.state !== 'open'; i++) await tick();
  assert.equal(s.state, 'open');
  assert.equal(s.reconnects, 1);
  const resent = sockets[1].sent.filter((d) => typeof d !== 'string');
  // The server had 400 samples: the rest of frame 2 (from sample 80) then frames 3 and 4.
  assert.deepEqual(resent.map((p) => [p.length, p[0]]), [[240, 2], [320, 3], [320, 9]]);
  sockets[1].deliver(frame(3)); // replay of what we had: dropped
  sockets[1].deliver(frame(4));
  assert.deepEqual(audio, [2, 3, 4]);
  s.close();
});

test('endProblem: what the user is told when a session ends', () => {
  assert.equal(endProblem({ reason: 'completed' }), null);
  assert.equal(endProblem({ reason: 'client_closed' }), null);
  assert.deepEqual(endProblem({ reason: 'server_shutdown' }),
    { code: 'server_shutdown', message: 'The server is shutting down.' });
  const gone = endProblem({ error: new DragomanError('client.server_gone', 'the server went away') });
  assert.equal(gone?.code, 'client.server_gone');
  assert.match(gone?.message ?? '', /The server went away/);
});

test('the badge comes from session.started, not from audio arriving', async () => {
  sockets = [];
  server = (ws, m) => {
    if (m.type === 'session.start') {
      ws.deliver(JSON.stringify({ type: 'session.started', seq: 1, session_id: 's_2', resume_token: 'rt',
        output: { encoding: 'pcm_s16le', watermark: false } }));
    }
  };
  const s = session();
  assert.equal(s.badge.watermarked, false);
  await s.open();
  assert.deepEqual(s.badge, { watermarked: false, text: 'AI voice · not watermarked' });
  s.close();
});
