// Dragoman WebSocket protocol v1, client side: message builders, the binary audio
// header, error texts and the caption state (committed vs provisional text).
// Pure ES module, no DOM and no I/O: the page, the extension and `node --test` share it.
// The server's executable reference is dragoman/web/protocol.py (docs/protocol.md).

export const PROTOCOL_VERSION = 1;
/** Input audio: PCM16 little-endian mono at 16 kHz, sent as binary messages. */
export const INPUT_RATE = 16000;
/** 20 ms frames: 320 samples, 640 bytes. */
export const FRAME_SAMPLES = 320;

/** Binary server frames: "<2sBBHHI8sIQQQ" (48 bytes) then PCM16 LE mono. */
export const AUDIO_HEADER_BYTES = 48;
const AUDIO_KIND_PCM16 = 1;

/** Stable error codes of protocol v1, plus the client's own (prefixed "client."). */
export const ERROR_MESSAGES = Object.freeze({
  unauthorized: 'The server refused the access token. Check the token in the settings.',
  origin_not_allowed: 'The server does not accept connections from this page (origin not allowed).',
  message_too_large: 'A message was too large for the server.',
  malformed_json: 'The server could not read a message from this client.',
  unknown_type: 'The server did not understand a message from this client.',
  unsupported_version: 'This client speaks a protocol version the server does not support.',
  bad_request: 'The server refused the request.',
  unsupported_format: 'The server does not accept this audio format.',
  no_session: 'The session was not started.',
  bad_audio: 'The server could not read the audio sent.',
  rate_limited: 'Audio arrived faster than real time; some was dropped.',
  session_limit: 'This token already holds as many sessions as it may. Close another session and retry.',
  quota_exceeded: 'The audio quota of this token is used up.',
  idle_timeout: 'The session ended because nothing was received for too long.',
  session_timeout: 'The session reached its maximum length.',
  slow_consumer: 'This connection reads too slowly to keep up.',
  resume_failed: 'The connection dropped and the session could not be resumed. Start again.',
  server_shutdown: 'The server is shutting down.',
  internal: 'The server had an internal error.',
  unsupported_language: 'The server cannot translate this language pair.',
  'client.mic_denied': 'Microphone access was denied. Allow the microphone for this site and try again.',
  'client.mic_unavailable': 'No microphone could be opened.',
  'client.server_unreachable': 'Cannot reach the Dragoman server. Is it running, and is the address right?',
  'client.server_gone': 'The server went away (connection lost and it did not come back). Start again when it is up.',
  'client.connection_lost': 'The connection to the server was lost; reconnecting…',
  'client.audio_unsupported': 'This browser cannot process audio here (AudioWorklet is missing).',
});

/** Session states (DragomanSession 'state' events) as shown to the user. */
export const STATE_LABELS = Object.freeze({
  connecting: 'Connecting…', open: 'Live', reconnecting: 'Reconnecting…', ended: 'Ended', failed: 'Stopped',
});

/**
 * The text to show for an error code (the server's own message is added when given).
 * @param {string} code
 * @param {string} [detail]
 * @returns {string}
 */
export function describeError(code, detail) {
  const known = /** @type {Record<string, string>} */ (ERROR_MESSAGES)[code];
  if (!known) return detail ? `Error (${code}): ${detail}` : `Error (${code}).`;
  return known;
}

/** Languages offered by the page and the extension's options (code, English name). */
export const LANGUAGES = Object.freeze([
  ['es', 'Spanish'], ['fr', 'French'], ['en', 'English'], ['it', 'Italian'], ['pt', 'Portuguese'],
  ['ca', 'Catalan'], ['de', 'German'], ['nl', 'Dutch'], ['pl', 'Polish'], ['ja', 'Japanese'],
  ['zh', 'Chinese'], ['hi', 'Hindi'],
]);

/**
 * What to say about the translated voice, from what the server announced in
 * `session.started` (`output.watermark`): a badge claims the watermark only when the
 * server says its speech carries it (the stand-in server's does not; an older server
 * that does not say is not trusted either).
 * @param {Record<string, any> | null | undefined} started  the `session.started` message
 * @returns {{watermarked: boolean, text: string}}
 */
export function watermarkBadge(started) {
  const watermarked = started?.output?.watermark === true;
  return { watermarked, text: watermarked ? 'AI voice · watermarked' : 'AI voice · not watermarked' };
}

/**
 * @typedef {object} StartOptions
 * @property {string} [source]  source language code, or "auto"
 * @property {string[]} targets target language codes
 * @property {'speaker'|'listener'} [role]
 * @property {string} [room]
 * @property {string} [name]
 * @property {string} [token]  API token: browsers cannot set an Authorization header
 * @property {boolean} [speak]
 * @property {boolean} [prosody]
 */

/**
 * The `session.start` message (PCM16 16 kHz mono input).
 * @param {StartOptions} options
 * @returns {Record<string, unknown>}
 */
export function startMessage(options) {
  /** @type {Record<string, unknown>} */
  const message = {
    type: 'session.start',
    version: PROTOCOL_VERSION,
    source: options.source || 'auto',
    targets: [...options.targets],
    role: options.role || 'speaker',
    speak: options.speak ?? true,
    prosody: options.prosody ?? true,
    format: { encoding: 'pcm_s16le', sample_rate: INPUT_RATE, channels: 1 },
  };
  if (options.room) message.room = options.room;
  if (options.name) message.name = options.name;
  if (options.token) message.token = options.token;
  return message;
}

/**
 * The `session.resume` message.
 * @param {{sessionId: string, resumeToken: string, lastSeq: number, token?: string}} r
 * @returns {Record<string, unknown>}
 */
export function resumeMessage(r) {
  /** @type {Record<string, unknown>} */
  const message = {
    type: 'session.resume', version: PROTOCOL_VERSION, session_id: r.sessionId,
    resume_token: r.resumeToken, last_seq: r.lastSeq,
  };
  if (r.token) message.token = r.token;
  return message;
}

/**
 * @typedef {object} AudioFrame
 * @property {number} seq
 * @property {number} speaker
 * @property {string} language
 * @property {number} sampleRate
 * @property {number} pts          samples at sampleRate in this language's output stream
 * @property {number} sourceStart  16 kHz session samples
 * @property {number} sourceEnd
 * @property {Int16Array} pcm
 */

/**
 * Parse a binary server frame (audio header + PCM16).
 * @param {ArrayBuffer} buffer
 * @returns {AudioFrame}
 */
export function parseAudioFrame(buffer) {
  if (buffer.byteLength < AUDIO_HEADER_BYTES) {
    throw new Error(`audio frame of ${buffer.byteLength} bytes has no header`);
  }
  const view = new DataView(buffer);
  const magic = String.fromCharCode(view.getUint8(0), view.getUint8(1));
  const kind = view.getUint8(3);
  const headerSize = view.getUint16(4, true);
  if (magic !== 'DG' || kind !== AUDIO_KIND_PCM16 || headerSize < AUDIO_HEADER_BYTES) {
    throw new Error('not a Dragoman audio frame');
  }
  let language = '';
  for (let i = 12; i < 20; i++) {
    const c = view.getUint8(i);
    if (c === 0) break;
    language += String.fromCharCode(c);
  }
  const count = Math.floor((buffer.byteLength - headerSize) / 2);
  const pcm = new Int16Array(count);
  for (let i = 0; i < count; i++) pcm[i] = view.getInt16(headerSize + 2 * i, true);
  return {
    speaker: view.getUint16(6, true),
    seq: view.getUint32(8, true),
    language,
    sampleRate: view.getUint32(20, true),
    pts: Number(view.getBigUint64(24, true)),
    sourceStart: Number(view.getBigUint64(32, true)),
    sourceEnd: Number(view.getBigUint64(40, true)),
    pcm,
  };
}

/**
 * Build a server audio frame (tests and stand-ins; the inverse of parseAudioFrame).
 * @param {Omit<AudioFrame, 'pcm'> & {pcm: Int16Array}} f
 * @returns {ArrayBuffer}
 */
export function encodeAudioFrame(f) {
  const buffer = new ArrayBuffer(AUDIO_HEADER_BYTES + 2 * f.pcm.length);
  const view = new DataView(buffer);
  view.setUint8(0, 0x44); view.setUint8(1, 0x47);
  view.setUint8(2, PROTOCOL_VERSION); view.setUint8(3, AUDIO_KIND_PCM16);
  view.setUint16(4, AUDIO_HEADER_BYTES, true);
  view.setUint16(6, f.speaker, true);
  view.setUint32(8, f.seq, true);
  for (let i = 0; i < 8; i++) view.setUint8(12 + i, i < f.language.length ? f.language.charCodeAt(i) : 0);
  view.setUint32(20, f.sampleRate, true);
  view.setBigUint64(24, BigInt(f.pts), true);
  view.setBigUint64(32, BigInt(f.sourceStart), true);
  view.setBigUint64(40, BigInt(f.sourceEnd), true);
  f.pcm.forEach((v, i) => view.setInt16(AUDIO_HEADER_BYTES + 2 * i, v, true));
  return buffer;
}

/**
 * @typedef {object} CaptionLine
 * @property {string} key        speaker/utterance
 * @property {string} speaker
 * @property {number} utterance
 * @property {string} committed  final text: never changes once shown
 * @property {string} provisional may still change
 * @property {boolean} final     the utterance is complete
 */

/**
 * Caption state for one stream (the source, or one target language): committed text
 * only grows; provisional text is replaced on every update. Feed it server messages.
 */
export class CaptionTrack {
  /** @param {{kind: 'source'|'translation', language?: string, keep?: number}} options */
  constructor(options) {
    this.kind = options.kind;
    this.language = options.language;
    this.keep = options.keep ?? 50;
    /** @type {CaptionLine[]} */
    this.lines = [];
  }

  /**
   * Apply one server message; true when it concerned this track.
   * @param {Record<string, any>} message
   * @returns {boolean}
   */
  apply(message) {
    const type = message.type;
    const isSource = type === 'source.partial' || type === 'source.commit';
    const isTranslation = type === 'translation.partial' || type === 'translation.commit';
    if (this.kind === 'source' ? !isSource : !isTranslation) return false;
    if (isTranslation && this.language && message.language !== this.language) return false;
    const line = this.line(String(message.speaker ?? ''), Number(message.utterance ?? 0));
    if (isSource) {
      const delta = joinWords(message.committed || []);
      if (delta) line.committed = joinText(line.committed, delta);
      line.provisional = joinWords(message.tentative || []);
    } else {
      line.committed += String(message.committed || '');
      line.provisional = String(message.uncommitted || '');
    }
    if (message.final) {
      line.final = true;
      line.provisional = '';
    }
    return true;
  }

  /** @param {string} speaker @param {number} utterance @returns {CaptionLine} */
  line(speaker, utterance) {
    const key = `${speaker}/${utterance}`;
    let line = this.lines.find((l) => l.key === key);
    if (!line) {
      line = { key, speaker, utterance, committed: '', provisional: '', final: false };
      this.lines.push(line);
      if (this.lines.length > this.keep) this.lines.splice(0, this.lines.length - this.keep);
    }
    return line;
  }

  /** Everything committed so far, oldest first. @returns {string} */
  committedText() {
    return this.lines.map((l) => l.committed.trim()).filter(Boolean).join(' ');
  }
}

/** @param {{text: string}[]} words @returns {string} */
export function joinWords(words) {
  return words.map((w) => String(w.text).trim()).filter(Boolean).join(' ');
}

/** Join two pieces of display text with one space where needed.
 * @param {string} a @param {string} b @returns {string} */
export function joinText(a, b) {
  if (!a) return b;
  if (!b) return a;
  return /\s$/.test(a) || /^\s/.test(b) ? a + b : `${a} ${b}`;
}
