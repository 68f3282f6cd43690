// Protocol v1 client code: audio header (checked against bytes made by the Python server
// code), message builders, caption state, error texts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AUDIO_HEADER_BYTES, CaptionTrack, LANGUAGES, describeError, encodeAudioFrame, parseAudioFrame,
  resumeMessage, startMessage, watermarkBadge,
} from '../../dragoman/web/static/lib/protocol.js';

// dragoman.web.protocol.audio_header(AudioChunk('fr', [0, .5, -.5, 1, -1], 24000, pts=123456,
// Span(16000, 32000)), seq=77, speaker=3) + encode_pcm16(pcm), made by the server's code.
const PYTHON_FRAME = '44470101300003004d0000006672000000000000c05d000040e2010000000000803e00000000'
  + '0000007d0000000000000000004000c0ff7f0180';

/** @param {string} hex */
function bytes(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out.buffer;
}

test('parses an audio frame made by the Python server', () => {
  const f = parseAudioFrame(bytes(PYTHON_FRAME));
  assert.equal(AUDIO_HEADER_BYTES, 48);
  assert.deepEqual({ seq: f.seq, speaker: f.speaker, language: f.language, rate: f.sampleRate,
    pts: f.pts, start: f.sourceStart, end: f.sourceEnd },
  { seq: 77, speaker: 3, language: 'fr', rate: 24000, pts: 123456, start: 16000, end: 32000 });
  assert.deepEqual([...f.pcm], [0, 16384, -16384, 32767, -32767]);
});

test('encodeAudioFrame is the exact inverse (same bytes as the server)', () => {
  const f = parseAudioFrame(bytes(PYTHON_FRAME));
  assert.deepEqual(new Uint8Array(encodeAudioFrame(f)), new Uint8Array(bytes(PYTHON_FRAME)));
});

test('rejects frames that are not Dragoman audio', () => {
  assert.throws(() => parseAudioFrame(new ArrayBuffer(10)), /no header/);
  const bad = new Uint8Array(bytes(PYTHON_FRAME));
  bad[0] = 0x58;
  assert.throws(() => parseAudioFrame(bad.buffer), /not a Dragoman audio frame/);
});

test('session.start carries the token in the message and asks for 16 kHz PCM16', () => {
  const m = startMessage({ source: 'es', targets: ['fr'], token: 'dk_x' });
  assert.deepEqual(m, {
    type: 'session.start', version: 1, source: 'es', targets: ['fr'], role: 'speaker',
    speak: true, prosody: true, token: 'dk_x',
    format: { encoding: 'pcm_s16le', sample_rate: 16000, channels: 1 },
  });
  const listener = startMessage({ targets: ['it'], role: 'listener', room: 'hall' });
  assert.equal(listener.source, 'auto');
  assert.equal(listener.room, 'hall');
  assert.equal('token' in listener, false);
  assert.deepEqual(resumeMessage({ sessionId: 's_1', resumeToken: 'r', lastSeq: 9 }),
    { type: 'session.resume', version: 1, session_id: 's_1', resume_token: 'r', last_seq: 9 });
});

test('captions: committed text only grows, provisional text is replaced', () => {
  const source = new CaptionTrack({ kind: 'source' });
  const fr = new CaptionTrack({ kind: 'translation', language: 'fr' });
  const w = (/** @type {string} */ text) => ({ text, start: 0, end: 0, probability: 1 });
  const messages = [
    { type: 'source.partial', speaker: 'a', utterance: 0, committed: [], tentative: [w(' Sus'), w(' contra')] },
    { type: 'source.commit', speaker: 'a', utterance: 0, committed: [w(' Sus')], tentative: [w(' contrasenas')] },
    { type: 'translation.partial', speaker: 'a', utterance: 0, language: 'fr', committed: '', uncommitted: 'Ses mots' },
    { type: 'translation.commit', speaker: 'a', utterance: 0, language: 'it', committed: 'Le ', uncommitted: '' },
    { type: 'translation.commit', speaker: 'a', utterance: 0, language: 'fr', committed: 'Ses ', uncommitted: 'mots de passe' },
    { type: 'source.commit', speaker: 'a', utterance: 0, committed: [w(' contrasenas'), w(' han')], tentative: [], final: true },
    { type: 'translation.commit', speaker: 'a', utterance: 0, language: 'fr', committed: 'mots de passe ont été changés.', uncommitted: '', final: true },
    { type: 'lag', stage: 'asr', behind: 0.2 },
  ];
  const seen = [];
  for (const m of messages) {
    source.apply(m);
    fr.apply(m);
    seen.push([source.lines[0]?.committed ?? '', fr.lines[0]?.committed ?? '']);
  }
  for (let i = 1; i < seen.length; i++) {
    assert.ok(seen[i][0].startsWith(seen[i - 1][0]), 'source committed text never changes');
    assert.ok(seen[i][1].startsWith(seen[i - 1][1]), 'translation committed text never changes');
  }
  assert.equal(source.committedText(), 'Sus contrasenas han');
  assert.equal(fr.committedText(), 'Ses mots de passe ont été changés.');
  assert.equal(fr.lines[0].provisional, '');
  assert.equal(fr.lines[0].final, true);
  assert.equal(fr.apply({ type: 'translation.partial', language: 'it', utterance: 1 }), false);
});

test('every protocol v1 error code has a readable message', () => {
  const codes = ['unauthorized', 'origin_not_allowed', 'message_too_large', 'malformed_json',
    'unknown_type', 'unsupported_version', 'bad_request', 'unsupported_format', 'no_session',
    'bad_audio', 'rate_limited', 'session_limit', 'quota_exceeded', 'idle_timeout',
    'session_timeout', 'slow_consumer', 'resume_failed', 'server_shutdown', 'internal'];
  for (const code of codes) assert.doesNotMatch(describeError(code), /^Error \(/, code);
  assert.match(describeError('client.mic_denied'), /Microphone access was denied/);
  assert.equal(describeError('brand_new', 'detail'), 'Error (brand_new): detail');
});

test('the watermark badge follows what the server announced in session.started', () => {
  assert.deepEqual(watermarkBadge({ type: 'session.started', output: { encoding: 'pcm_s16le', watermark: true } }),
    { watermarked: true, text: 'AI voice · watermarked' });
  // The stand-in server says false; a server that says nothing is not taken at its word.
  for (const started of [{ output: { watermark: false } }, { output: {} }, {}, null]) {
    assert.deepEqual(watermarkBadge(started), { watermarked: false, text: 'AI voice · not watermarked' });
  }
});

test('one language list for the page and the extension options', () => {
  const codes = LANGUAGES.map(([code]) => code);
  assert.equal(new Set(codes).size, codes.length);
  for (const code of ['es', 'fr', 'en']) assert.ok(codes.includes(code));
  assert.ok(Object.isFrozen(LANGUAGES));
});
