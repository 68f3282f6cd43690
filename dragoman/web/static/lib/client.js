// A protocol v1 session over a browser WebSocket: start, audio frames, events, acks,
// and resume after a dropped connection (re-sending the audio the server missed).
// Shared by the web page and the extension's offscreen document; no DOM access.
import {
  PROTOCOL_VERSION, describeError, parseAudioFrame, resumeMessage, startMessage, watermarkBadge,
} from './protocol.js';

/** A refusal or failure with a protocol error code (client codes start with "client."). */
export class DragomanError extends Error {
  /** @param {string} code @param {string} message @param {{retryable?: boolean, fatal?: boolean}} [o] */
  constructor(code, message, o = {}) {
    super(message);
    this.name = 'DragomanError';
    this.code = code;
    this.retryable = Boolean(o.retryable);
    this.fatal = o.fatal ?? true;
  }
}

/**
 * @typedef {object} SessionOptions
 * @property {string} url                 ws(s)://host:port/v1
 * @property {string} [token]             sent inside session.start / session.resume, never logged
 * @property {import('./protocol.js').StartOptions} start
 * @property {boolean} [reconnect]        resume after a dropped connection (default true)
 * @property {number} [resendSeconds]     audio kept for re-sending after a resume (default 30)
 * @property {number} [openTimeoutMs]     connecting + session.start answer (default 15000)
 * @property {number} [connectAttempts]   tries to reach the server at the start (default 3)
 * @property {typeof WebSocket} [WebSocketImpl]
 * @property {(url: string) => Promise<boolean>} [probe]  is an HTTP server answering there?
 */

/**
 * Events (CustomEvent detail):
 *  'message'  a JSON server message with a seq (captions, speech, lag, errors...)
 *  'audio'    an AudioFrame (translated speech)
 *  'notice'   a non-fatal error message {code, message, retryable}
 *  'state'    {state: 'connecting'|'open'|'reconnecting'|'ended'|'failed', reconnects}
 *  'end'      session.end {reason, summary} or a fatal DragomanError {error}
 */
export class DragomanSession extends EventTarget {
  /** @param {SessionOptions} options */
  constructor(options) {
    super();
    this.options = options;
    this.WS = options.WebSocketImpl ?? globalThis.WebSocket;
    /** @type {WebSocket | null} */
    this.ws = null;
    /** @type {Record<string, any> | null} */
    this.info = null;
    this.state = 'idle';
    this.lastSeq = 0;
    this.acked = 0;
    this.sent = 0; // 16 kHz samples handed to sendFrame
    /** @type {{start: number, pcm: Int16Array}[]} */
    this.resend = [];
    this.resendSamples = 0;
    this.inputEnded = false;
    this.closedByUs = false;
    this.reconnects = 0;
    this.ended = false;
  }

  /** What the server said about its speech's watermark (session.started). */
  get badge() {
    return watermarkBadge(this.info);
  }

  /** @param {string} type @param {unknown} detail */
  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** @param {string} state */
  setState(state) {
    this.state = state;
    this.emit('state', { state, reconnects: this.reconnects });
  }

  /**
   * Connect and start the session; resolves with `session.started`.
   * @returns {Promise<Record<string, any>>}
   */
  async open() {
    this.setState('connecting');
    const token = this.options.token;
    try {
      const { ws, first } = await this.connect(startMessage({ ...this.options.start, token }));
      if (first.type !== 'session.started') throw this.refusal(first);
      this.info = first;
      this.lastSeq = Number(first.seq || 0);
      this.adopt(ws);
      this.setState('open');
      return first;
    } catch (error) {
      this.setState('failed');
      throw error;
    }
  }

  /**
   * `handshake`, tried again (after 0.5 s, then 1 s...) while the server cannot be
   * reached, up to `connectAttempts` tries: a server restarting or a connection lost
   * in passing is not worth failing the user's start for. A refusal fails at once.
   * @param {Record<string, unknown>} hello
   */
  async connect(hello) {
    const attempts = Math.max(1, this.options.connectAttempts ?? 3);
    for (let attempt = 1, delay = 500; ; attempt += 1, delay *= 2) {
      try {
        return await this.handshake(hello);
      } catch (error) {
        if (attempt >= attempts || !(error instanceof DragomanError)
            || error.code !== 'client.server_unreachable') throw error;
        await sleep(delay);
      }
    }
  }

  /** @param {Record<string, any>} message */
  refusal(message) {
    return new DragomanError(String(message.code || 'bad_request'), String(message.message || ''),
      { retryable: Boolean(message.retryable), fatal: true });
  }

  /**
   * Open a socket, send `first`, wait for the first JSON answer.
   * @param {Record<string, unknown>} hello
   * @returns {Promise<{ws: WebSocket, first: Record<string, any>}>}
   */
  handshake(hello) {
    const timeout = this.options.openTimeoutMs ?? 15000;
    return new Promise((resolve, reject) => {
      let settled = false;
      let ws;
      try {
        ws = new this.WS(this.options.url);
      } catch (error) {
        reject(new DragomanError('client.server_unreachable', String(error)));
        return;
      }
      ws.binaryType = 'arraybuffer';
      const timer = setTimeout(() => fail(new DragomanError('client.server_unreachable',
        'no answer from the server in time', { retryable: true })), timeout);
      /** @param {DragomanError} error */
      const fail = (error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        try { ws.close(); } catch { /* already closed */ }
        reject(error);
      };
      ws.onopen = () => ws.send(JSON.stringify(hello));
      ws.onmessage = (event) => {
        if (typeof event.data !== 'string' || settled) return;
        settled = true;
        clearTimeout(timer);
        ws.onmessage = null; ws.onclose = null; ws.onerror = null;
        resolve({ ws, first: JSON.parse(event.data) });
      };
      ws.onerror = () => { /* the close event follows with the details we have */ };
      ws.onclose = (event) => {
        if (settled) return;
        // A browser sees neither the HTTP status nor the body of a refused handshake.
        this.diagnose(event.reason).then(fail);
      };
    });
  }

  /**
   * Why a connection failed before any message: a known code in the close reason, or
   * (the server answers plain HTTP but refused the WebSocket) a refused origin, or an
   * unreachable server.
   * @param {string} reason
   * @returns {Promise<DragomanError>}
   */
  async diagnose(reason) {
    if (reason) return new DragomanError(reason, reason);
    const probe = this.options.probe ?? probeHttp;
    const answering = await probe(this.options.url).catch(() => false);
    if (answering) {
      return new DragomanError('origin_not_allowed',
        'the server answered but refused the WebSocket connection (origin not allowed?)');
    }
    return new DragomanError('client.server_unreachable', `cannot reach ${this.options.url}`,
      { retryable: true });
  }

  /** @param {WebSocket} ws */
  adopt(ws) {
    this.ws = ws;
    ws.onmessage = (event) => this.handle(event.data);
    ws.onclose = (event) => this.closed(ws, event);
  }

  /** @param {string | ArrayBuffer} data */
  handle(data) {
    if (typeof data !== 'string') {
      let frame;
      try { frame = parseAudioFrame(data); } catch { return; }
      if (frame.seq <= this.lastSeq) return; // replayed after a resume: already had it
      this.lastSeq = frame.seq;
      this.emit('audio', frame);
      this.maybeAck();
      return;
    }
    const message = JSON.parse(data);
    const seq = Number(message.seq || 0);
    if (seq) {
      if (seq <= this.lastSeq) return;
      this.lastSeq = seq;
    }
    if (message.type === 'session.end') {
      this.ended = true;
      this.setState('ended');
      this.emit('end', message);
      return;
    }
    if (message.type === 'error') {
      if (message.fatal) {
        this.fatal = new DragomanError(message.code, message.message,
          { retryable: message.retryable, fatal: true });
      } else {
        this.emit('notice', { code: message.code, message: message.message, retryable: message.retryable });
      }
    }
    this.emit('message', message);
    this.maybeAck();
  }

  maybeAck() {
    if (this.lastSeq - this.acked >= 32 && this.ws && this.ws.readyState === 1) {
      this.acked = this.lastSeq;
      this.ws.send(JSON.stringify({ type: 'ack', seq: this.acked }));
    }
  }

  /** @param {WebSocket} ws @param {CloseEvent} event */
  closed(ws, event) {
    if (ws !== this.ws) return;
    this.ws = null;
    if (this.ended || this.closedByUs) {
      if (!this.ended) { this.ended = true; this.setState('ended'); }
      return;
    }
    if (this.fatal || event.code === 1008) {
      const error = this.fatal ?? new DragomanError(event.reason || 'bad_request', event.reason);
      this.finish(error);
      return;
    }
    if (this.options.reconnect === false || !this.info) {
      this.finish(new DragomanError('client.connection_lost', `connection closed (${event.code})`));
      return;
    }
    this.resume();
  }

  /** @param {DragomanError} error */
  finish(error) {
    this.ended = true;
    this.setState('failed');
    this.emit('end', { error });
  }

  async resume() {
    this.setState('reconnecting');
    const info = /** @type {Record<string, any>} */ (this.info);
    const grace = 1000 * Number(info.limits?.resume_grace ?? 30);
    const deadline = Date.now() + grace;
    let delay = 250;
    /** @type {DragomanError | null} */
    let last = null;
    while (Date.now() < deadline && !this.closedByUs) {
      let result;
      try {
        result = await this.handshake(resumeMessage({ sessionId: info.session_id,
          resumeToken: info.resume_token, lastSeq: this.lastSeq, token: this.options.token }));
      } catch (error) {
        if (error instanceof DragomanError && !error.code.startsWith('client.')
            && error.code !== 'origin_not_allowed') {
          this.finish(error);
          return;
        }
        last = error instanceof DragomanError ? error : null;
        await sleep(delay);
        delay = Math.min(2 * delay, 2000);
        continue;
      }
      const { ws, first } = result;
      if (first.type !== 'session.resumed') {
        try { ws.close(); } catch { /* closed */ }
        this.finish(this.refusal(first));
        return;
      }
      this.reconnects += 1;
      this.adopt(ws);
      this.resendFrom(Number(first.audio_received_samples ?? this.sent));
      if (this.inputEnded) ws.send(JSON.stringify({ type: 'audio.end' }));
      this.setState('open');
      return;
    }
    this.finish(last?.code === 'client.server_unreachable'
      ? new DragomanError('client.server_gone', 'the server went away and did not come back',
        { retryable: true })
      : new DragomanError('resume_failed', 'could not reconnect within the grace period',
        { retryable: true }));
  }

  /** @param {number} received */
  resendFrom(received) {
    for (const { start, pcm } of this.resend) {
      const end = start + pcm.length;
      if (end <= received) continue;
      const skip = Math.max(0, received - start);
      this.ws?.send(pcm.subarray(skip));
    }
  }

  /**
   * Send one PCM16 16 kHz mono frame (kept for re-sending after a resume).
   * @param {Int16Array} pcm
   */
  sendFrame(pcm) {
    if (this.ended || this.inputEnded) return;
    this.resend.push({ start: this.sent, pcm });
    this.sent += pcm.length;
    this.resendSamples += pcm.length;
    const limit = (this.options.resendSeconds ?? 30) * 16000;
    while (this.resendSamples > limit && this.resend.length) {
      this.resendSamples -= /** @type {{pcm: Int16Array}} */ (this.resend.shift()).pcm.length;
    }
    if (this.ws && this.ws.readyState === 1) this.ws.send(pcm);
  }

  /** No more audio: the server flushes, delivers the rest and ends the session. */
  endInput() {
    this.inputEnded = true;
    this.control({ type: 'audio.end' });
  }

  /** @param {string} language */
  addTarget(language) { this.control({ type: 'target.add', language }); }

  /** @param {string} language */
  removeTarget(language) { this.control({ type: 'target.remove', language }); }

  /** @param {Record<string, unknown>} message */
  control(message) {
    if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify(message));
  }

  /** End now (normal close: the server does not keep the session for a resume). */
  close() {
    this.closedByUs = true;
    if (this.ws) this.ws.close(1000, 'client closed');
    else if (!this.ended) { this.ended = true; this.setState('ended'); }
  }

  /** For tests: drop the socket as a network failure would (not a normal close). */
  dropConnection() {
    this.ws?.close(4000, 'simulated drop');
  }
}

/**
 * The problem to show for a session's 'end' event: a fatal error, or an abnormal
 * `session.end` reason; null when the session ended normally.
 * @param {{reason?: string, error?: DragomanError}} detail
 * @returns {{code: string, message: string} | null}
 */
export function endProblem(detail) {
  if (detail.error) {
    return { code: detail.error.code, message: describeError(detail.error.code, detail.error.message) };
  }
  if (!detail.reason || detail.reason === 'completed' || detail.reason === 'client_closed') return null;
  return { code: detail.reason, message: describeError(detail.reason) };
}

/** @param {number} ms */
function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Whether an HTTP server answers at the WebSocket URL's host (`/healthz`).
 * @param {string} wsUrl
 * @returns {Promise<boolean>}
 */
export async function probeHttp(wsUrl) {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
  url.pathname = '/healthz';
  url.search = '';
  try {
    await fetch(url.href, { mode: 'no-cors', cache: 'no-store' });
    return true;
  } catch {
    return false;
  }
}

export { PROTOCOL_VERSION };
