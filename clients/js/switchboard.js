// Switchboard gateway client: one ES module for browsers and Node >= 20, no build step.
//
// Speaks docs/protocol.md (wire protocol v1): authenticates with a token (or a token
// provider, also used to refresh before expiry and on every reconnect), reconnects with
// jittered exponential backoff, rejoins every joined channel with `since` = the last seq it
// delivered, drops any message it already delivered (dedupe by seq), fills a hole with
// `history` when the server could not replay it, resolves one promise per `send` on its ack
// and resends unacknowledged sends after a reconnect with the same `client_id`.
//
// Node 22+ and browsers have a global WebSocket; on Node 20 pass one in, e.g.
//   import WebSocket from 'ws';
//   new SwitchboardClient({ url, token, WebSocket });

export const JSON_SUBPROTOCOL = 'switchboard.v1.json';
export const MSGPACK_SUBPROTOCOL = 'switchboard.v1.msgpack';

/** A refusal by the server (`error` frame) or by the client itself (`closed`, `unauthorized`). */
export class SwitchboardError extends Error {
  constructor(code, message, frame = undefined) {
    super(message || code);
    this.name = 'SwitchboardError';
    this.code = code;
    this.retryAfterMs = frame && frame.retry_after_ms != null ? frame.retry_after_ms : undefined;
    this.frame = frame;
  }
}

// ------------------------------------------------------------------------------------------
// MessagePack: the subset the protocol uses (nil, bool, int, float, str, bin, array, map),
// no extension types. Integers beyond 2^53 decode to BigInt.

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

function msgpackEncode(value) {
  let buf = new Uint8Array(256);
  let view = new DataView(buf.buffer);
  let pos = 0;
  const ensure = (n) => {
    if (pos + n <= buf.length) return;
    let size = buf.length * 2;
    while (size < pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(buf);
    buf = next;
    view = new DataView(buf.buffer);
  };
  const u8 = (b) => { ensure(1); buf[pos++] = b; };
  const head = (b, n, width) => {
    ensure(1 + width);
    buf[pos++] = b;
    if (width === 1) view.setUint8(pos, n);
    else if (width === 2) view.setUint16(pos, n);
    else view.setUint32(pos, n);
    pos += width;
  };
  const put = (v) => {
    if (v === null || v === undefined) return u8(0xc0);
    if (v === false) return u8(0xc2);
    if (v === true) return u8(0xc3);
    if (typeof v === 'number') {
      if (Number.isInteger(v) && Math.abs(v) <= Number.MAX_SAFE_INTEGER) {
        if (v >= 0) {
          if (v < 0x80) return u8(v);
          if (v < 0x100) return head(0xcc, v, 1);
          if (v < 0x10000) return head(0xcd, v, 2);
          if (v < 0x100000000) return head(0xce, v, 4);
          ensure(9); buf[pos++] = 0xcf; view.setBigUint64(pos, BigInt(v)); pos += 8; return;
        }
        if (v >= -32) return u8(v & 0xff);
        if (v >= -0x80) { ensure(2); buf[pos++] = 0xd0; view.setInt8(pos, v); pos += 1; return; }
        if (v >= -0x8000) { ensure(3); buf[pos++] = 0xd1; view.setInt16(pos, v); pos += 2; return; }
        if (v >= -0x80000000) { ensure(5); buf[pos++] = 0xd2; view.setInt32(pos, v); pos += 4; return; }
        ensure(9); buf[pos++] = 0xd3; view.setBigInt64(pos, BigInt(v)); pos += 8; return;
      }
      ensure(9); buf[pos++] = 0xcb; view.setFloat64(pos, v); pos += 8; return;
    }
    if (typeof v === 'bigint') {
      ensure(9);
      if (v >= 0n) { buf[pos++] = 0xcf; view.setBigUint64(pos, v); } else { buf[pos++] = 0xd3; view.setBigInt64(pos, v); }
      pos += 8;
      return;
    }
    if (typeof v === 'string') {
      const bytes = utf8Encoder.encode(v);
      const n = bytes.length;
      if (n < 32) u8(0xa0 | n);
      else if (n < 0x100) head(0xd9, n, 1);
      else if (n < 0x10000) head(0xda, n, 2);
      else head(0xdb, n, 4);
      ensure(n); buf.set(bytes, pos); pos += n;
      return;
    }
    if (v instanceof Uint8Array || v instanceof ArrayBuffer) {
      const bytes = v instanceof Uint8Array ? v : new Uint8Array(v);
      const n = bytes.length;
      if (n < 0x100) head(0xc4, n, 1);
      else if (n < 0x10000) head(0xc5, n, 2);
      else head(0xc6, n, 4);
      ensure(n); buf.set(bytes, pos); pos += n;
      return;
    }
    if (Array.isArray(v)) {
      const n = v.length;
      if (n < 16) u8(0x90 | n);
      else if (n < 0x10000) head(0xdc, n, 2);
      else head(0xdd, n, 4);
      for (const item of v) put(item);
      return;
    }
    if (typeof v === 'object') {
      const keys = Object.keys(v).filter((k) => v[k] !== undefined);
      const n = keys.length;
      if (n < 16) u8(0x80 | n);
      else if (n < 0x10000) head(0xde, n, 2);
      else head(0xdf, n, 4);
      for (const k of keys) { put(k); put(v[k]); }
      return;
    }
    throw new TypeError(`msgpack: cannot encode ${typeof v}`);
  };
  put(value);
  return buf.subarray(0, pos);
}

function msgpackDecode(input) {
  const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const need = (n) => { if (pos + n > bytes.length) throw new RangeError('msgpack: truncated'); };
  const str = (n) => { need(n); const s = utf8Decoder.decode(bytes.subarray(pos, pos + n)); pos += n; return s; };
  const bin = (n) => { need(n); const b = bytes.slice(pos, pos + n); pos += n; return b; };
  const big = (b) => (b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b);
  const arr = (n) => { const out = new Array(n); for (let i = 0; i < n; i++) out[i] = get(); return out; };
  const map = (n) => { const out = {}; for (let i = 0; i < n; i++) { const k = get(); out[String(k)] = get(); } return out; };
  const get = () => {
    need(1);
    const b = bytes[pos++];
    if (b < 0x80) return b;
    if (b >= 0xe0) return b - 0x100;
    if ((b & 0xf0) === 0x80) return map(b & 0x0f);
    if ((b & 0xf0) === 0x90) return arr(b & 0x0f);
    if ((b & 0xe0) === 0xa0) return str(b & 0x1f);
    let v;
    switch (b) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: need(1); v = view.getUint8(pos); pos += 1; return bin(v);
      case 0xc5: need(2); v = view.getUint16(pos); pos += 2; return bin(v);
      case 0xc6: need(4); v = view.getUint32(pos); pos += 4; return bin(v);
      case 0xca: need(4); v = view.getFloat32(pos); pos += 4; return v;
      case 0xcb: need(8); v = view.getFloat64(pos); pos += 8; return v;
      case 0xcc: need(1); v = view.getUint8(pos); pos += 1; return v;
      case 0xcd: need(2); v = view.getUint16(pos); pos += 2; return v;
      case 0xce: need(4); v = view.getUint32(pos); pos += 4; return v;
      case 0xcf: need(8); v = view.getBigUint64(pos); pos += 8; return big(v);
      case 0xd0: need(1); v = view.getInt8(pos); pos += 1; return v;
      case 0xd1: need(2); v = view.getInt16(pos); pos += 2; return v;
      case 0xd2: need(4); v = view.getInt32(pos); pos += 4; return v;
      case 0xd3: need(8); v = view.getBigInt64(pos); pos += 8; return big(v);
      case 0xd9: need(1); v = view.getUint8(pos); pos += 1; return str(v);
      case 0xda: need(2); v = view.getUint16(pos); pos += 2; return str(v);
      case 0xdb: need(4); v = view.getUint32(pos); pos += 4; return str(v);
      case 0xdc: need(2); v = view.getUint16(pos); pos += 2; return arr(v);
      case 0xdd: need(4); v = view.getUint32(pos); pos += 4; return arr(v);
      case 0xde: need(2); v = view.getUint16(pos); pos += 2; return map(v);
      case 0xdf: need(4); v = view.getUint32(pos); pos += 4; return map(v);
      default: throw new RangeError(`msgpack: unsupported type byte 0x${b.toString(16)}`);
    }
  };
  const value = get();
  if (pos !== bytes.length) throw new RangeError('msgpack: trailing bytes');
  return value;
}

export const msgpack = { encode: msgpackEncode, decode: msgpackDecode };

// ------------------------------------------------------------------------------------------

/** `community:<id>` -> { namespace: 'community', key: '<id>', realm: null }. */
export function parseChannel(channel) {
  const i = channel.indexOf(':');
  const namespace = channel.slice(0, i);
  const key = channel.slice(i + 1);
  const dot = namespace.indexOf('.');
  // A realm prefix names another realm's namespace (`academy.user:<id>`); `community.live`
  // is analyst's own namespace.
  const realms = ['analyst', 'academy', 'aichat', 'creator', 'market'];
  const realm = dot > 0 && realms.includes(namespace.slice(0, dot)) ? namespace.slice(0, dot) : null;
  return { namespace, key, realm };
}

function newClientId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  const bytes = new Uint8Array(16);
  if (c && typeof c.getRandomValues === 'function') c.getRandomValues(bytes);
  else for (let i = 0; i < 16; i++) bytes[i] = Math.floor(Math.random() * 256);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const DEFAULTS = {
  format: 'json',
  auth: 'frame',
  refreshRatio: 0.8,
  heartbeatMs: 25000,
  heartbeatTimeoutMs: 10000,
  maxAuthFailures: 3,
  maxUnavailableRetries: 10,
  fillGaps: true,
  reconnect: { initialDelayMs: 250, maxDelayMs: 30000, factor: 2, jitter: 0.5 },
};

// Ops retried on the next connection when the socket is lost before their reply.
const RETRIED = new Set(['join', 'send', 'history', 'read', 'presence', 'read_notifications', 'ping']);

export class SwitchboardClient {
  /**
   * @param {object} options see switchboard.d.ts (ClientOptions)
   */
  constructor(options) {
    if (!options || !options.url) throw new TypeError('SwitchboardClient: `url` is required');
    if (options.token == null) throw new TypeError('SwitchboardClient: `token` is required');
    this.options = { ...DEFAULTS, ...options, reconnect: { ...DEFAULTS.reconnect, ...(options.reconnect || {}) } };
    this._WebSocket = options.WebSocket || globalThis.WebSocket;
    if (!this._WebSocket) {
      throw new TypeError('SwitchboardClient: no global WebSocket; pass `WebSocket` (e.g. the `ws` package)');
    }
    this._state = 'idle';
    this._listeners = new Map();
    this._ws = null;
    this._gen = 0;
    this._ref = 0;
    this._attempt = 0;
    this._authFailures = 0;
    this._lastAuthError = null;
    this._ops = []; // pending requests, in the order they were made
    this._inflight = new Map(); // ref -> op (on the current socket)
    this._channels = new Map(); // channel -> ChannelState
    this._connectWaiters = [];
    this._timers = { reconnect: null, refresh: null, heartbeat: null, heartbeatDeadline: null };
    this._seenNotifications = new Set();
    this._seenOrder = [];
    this._notificationsUnread = 0;
    this._lastFrameAt = 0;
    this.welcome = null;
    this.userId = null;
    this.sessionId = null;
    this.userStream = null;
    this.expiresAt = null;
    this.clockSkewMs = 0;
  }

  // --- public state ---------------------------------------------------------------------------

  get state() { return this._state; }
  get notificationsUnread() { return this._notificationsUnread; }
  get channels() { return [...this._channels.keys()]; }
  lastSeq(channel) { const ch = this._channels.get(channel); return ch ? ch.lastSeq : null; }
  unread(channel) { const ch = this._channels.get(channel); return ch ? ch.unreadSeqs.length : 0; }
  role(channel) { const ch = this._channels.get(channel); return ch ? ch.role : null; }

  /** Subscribe to 'message' | 'event' | 'notification' | 'state' | 'unread' | 'welcome' |
   * 'rejoin' | 'reset' | 'gap' | 'error'. Returns a function that unsubscribes. */
  on(name, callback) {
    if (!this._listeners.has(name)) this._listeners.set(name, new Set());
    this._listeners.get(name).add(callback);
    return () => this.off(name, callback);
  }

  off(name, callback) {
    const set = this._listeners.get(name);
    if (set) set.delete(callback);
  }

  _emit(name, payload) {
    const set = this._listeners.get(name);
    if (!set) return;
    for (const cb of [...set]) {
      try { cb(payload); } catch (err) {
        if (name !== 'error') this._emit('error', err);
        else setTimeout(() => { throw err; });
      }
    }
  }

  // --- connection -------------------------------------------------------------------------------

  /** Connect (once); resolves with the welcome frame, rejects if the client closes first. */
  connect() {
    if (this._state === 'closed') return Promise.reject(new SwitchboardError('closed', 'client is closed'));
    if (this._state === 'connected') return Promise.resolve(this.welcome);
    const waiter = new Promise((resolve, reject) => this._connectWaiters.push({ resolve, reject }));
    if (this._state === 'idle') this._open();
    return waiter;
  }

  /** Close for good: pending requests are rejected with code `closed`. */
  close() {
    if (this._state === 'closed') return;
    const ws = this._ws;
    this._ws = null;
    this._clearTimers();
    this._setState('closed', { code: 1000 });
    if (ws) { try { ws.close(1000, 'client closed'); } catch (_) { /* already closing */ } }
    this._failAll(new SwitchboardError('closed', 'client is closed'));
  }

  _setState(state, detail = {}) {
    const previous = this._state;
    this._state = state;
    this._emit('state', { state, previous, ...detail });
  }

  _clearTimers() {
    for (const k of Object.keys(this._timers)) {
      if (this._timers[k]) clearTimeout(this._timers[k]);
      this._timers[k] = null;
    }
  }

  _failAll(error) {
    const ops = this._ops;
    this._ops = [];
    this._inflight.clear();
    for (const op of ops) op.reject(error);
    const waiters = this._connectWaiters;
    this._connectWaiters = [];
    for (const w of waiters) w.reject(error);
  }

  async _token() {
    const t = this.options.token;
    return typeof t === 'function' ? await t() : t;
  }

  async _open() {
    const gen = ++this._gen;
    this._setState('connecting', { attempt: this._attempt });
    let token;
    try {
      token = await this._token();
    } catch (err) {
      if (gen !== this._gen || this._state === 'closed') return;
      this._emit('error', err);
      this._scheduleReconnect({ code: null, reason: 'token provider failed' });
      return;
    }
    if (gen !== this._gen || this._state === 'closed') return;
    let url = this.options.url;
    if (this.options.auth === 'query') url += (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token);
    const protocols = this.options.format === 'msgpack' ? [MSGPACK_SUBPROTOCOL, JSON_SUBPROTOCOL] : [JSON_SUBPROTOCOL];
    let ws;
    try {
      ws = new this._WebSocket(url, protocols);
    } catch (err) {
      this._emit('error', err);
      this._scheduleReconnect({ code: null, reason: String(err && err.message) });
      return;
    }
    ws.binaryType = 'arraybuffer';
    this._ws = ws;
    this._welcomed = false;
    this._lastAuthError = null;
    ws.onopen = () => {
      if (ws !== this._ws) return;
      if (this.options.auth !== 'query') this._write(ws, { op: 'auth', token });
    };
    ws.onmessage = (ev) => {
      if (ws !== this._ws) return;
      let frame;
      try {
        frame = this._decode(ev.data);
      } catch (err) {
        this._emit('error', err);
        return;
      }
      if (frame && typeof frame.then === 'function') {
        // A Blob (binaryType could not be set): decode asynchronously, keep order.
        this._blobChain = (this._blobChain || Promise.resolve()).then(() => frame).then((f) => {
          if (ws === this._ws) this._onFrame(f);
        });
        return;
      }
      this._onFrame(frame);
    };
    ws.onerror = () => { /* a close event follows */ };
    ws.onclose = (ev) => this._lost(ws, ev.code, ev.reason);
  }

  _decode(data) {
    this._lastFrameAt = Date.now();
    if (typeof data === 'string') return JSON.parse(data);
    if (data instanceof ArrayBuffer || ArrayBuffer.isView(data)) {
      const bytes = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      return msgpackDecode(bytes);
    }
    if (typeof Blob !== 'undefined' && data instanceof Blob) return data.arrayBuffer().then((b) => msgpackDecode(new Uint8Array(b)));
    if (Array.isArray(data)) { // ws: fragmented Buffer[]
      const total = data.reduce((n, b) => n + b.length, 0);
      const out = new Uint8Array(total);
      let o = 0;
      for (const b of data) { out.set(b, o); o += b.length; }
      return msgpackDecode(out);
    }
    throw new TypeError('unexpected WebSocket message data');
  }

  _write(ws, frame) {
    if (ws.protocol === MSGPACK_SUBPROTOCOL) ws.send(msgpackEncode(frame));
    else ws.send(JSON.stringify(frame));
  }

  /** The socket is gone (closed by either side, or given up by the heartbeat). */
  _lost(ws, code, reason) {
    if (ws !== this._ws) return;
    this._ws = null;
    for (const k of ['refresh', 'heartbeat', 'heartbeatDeadline']) {
      if (this._timers[k]) clearTimeout(this._timers[k]);
      this._timers[k] = null;
    }
    try { ws.onopen = ws.onmessage = ws.onclose = null; ws.onerror = () => {}; ws.close(); } catch (_) { /* closed */ }
    if (this._state === 'closed') return;
    // Replies that can no longer come: retried ops wait for the next socket, others settle now.
    for (const [, op] of this._inflight) {
      op.ws = null;
      if (!RETRIED.has(op.frame.op)) this._settle(op, 'resolve', undefined);
    }
    this._inflight.clear();
    for (const ch of this._channels.values()) ch.joined = false;
    const welcomed = this._welcomed;
    this._welcomed = false;
    if (code === 4001) {
      this._authFailures += 1;
      const err = this._lastAuthError || new SwitchboardError('unauthorized', reason || 'unauthorized');
      if (typeof this.options.token !== 'function' || this._authFailures >= this.options.maxAuthFailures) {
        this._emit('error', err);
        this._clearTimers();
        this._setState('closed', { code, reason });
        this._failAll(err);
        return;
      }
    }
    if (!welcomed) this._attempt += 1;
    this._scheduleReconnect({ code, reason });
  }

  _backoff(attempt) {
    const r = this.options.reconnect;
    const base = Math.min(r.maxDelayMs, r.initialDelayMs * Math.pow(r.factor, attempt));
    return Math.round(base * (1 - r.jitter * Math.random()));
  }

  _scheduleReconnect(detail) {
    if (this._state === 'closed') return;
    const delayMs = this._backoff(this._attempt);
    this._setState('reconnecting', { ...detail, attempt: this._attempt, delayMs });
    this._timers.reconnect = setTimeout(() => {
      this._timers.reconnect = null;
      if (this._state !== 'closed') this._open();
    }, delayMs);
  }

  // --- frames from the server --------------------------------------------------------------------

  _onFrame(f) {
    switch (f.op) {
      case 'welcome': return this._onWelcome(f);
      case 'ok': case 'error': case 'pong': return this._onReply(f);
      case 'msg': return this._onMsg(f);
      case 'event': return this._onEvent(f);
      case 'notification': return this._onNotification(f);
      default: return undefined; // unknown ops are ignored (forward compatible)
    }
  }

  _onWelcome(f) {
    this.welcome = f;
    this.userId = f.user_id;
    this.sessionId = f.session_id;
    this.expiresAt = f.expires_at;
    this.clockSkewMs = f.server_time - Date.now();
    this._welcomed = true;
    this._attempt = 0;
    this._authFailures = 0;
    this._setState('connected', { sessionId: f.session_id });
    this._emit('welcome', f);
    this._scheduleRefresh();
    this._startHeartbeat();
    this._flush();
  }

  /** After a welcome: rejoin channels (with since), then (re)send every pending request. */
  _flush() {
    const pendingJoins = new Set(this._ops.filter((op) => op.frame.op === 'join').map((op) => op.frame.channel));
    for (const [name, ch] of this._channels) {
      // A refused rejoin is reported as an 'error' event (see _joinRefused).
      if (!pendingJoins.has(name)) this._request({ op: 'join', channel: name }, { internal: true }).catch(() => {});
    }
    const joins = this._ops.filter((op) => op.frame.op === 'join');
    const rest = this._ops.filter((op) => op.frame.op !== 'join');
    for (const op of [...joins, ...rest]) if (!op.ws) this._transmit(op);
  }

  _onReply(f) {
    if (f.ref == null) {
      if (f.op === 'ok' && f.role === 'self') {
        // The automatic join of the user stream completes the connection handshake.
        this.userStream = f.channel;
        this._notificationsUnread = f.unread || 0;
        this._emit('unread', { channel: f.channel, count: this._notificationsUnread });
        const waiters = this._connectWaiters;
        this._connectWaiters = [];
        for (const w of waiters) w.resolve(this.welcome);
      } else if (f.op === 'error') {
        const err = new SwitchboardError(f.code, f.message, f);
        if (!this._welcomed && f.code === 'unauthorized') this._lastAuthError = err; // close 4001 follows
        else this._emit('error', err);
      }
      return;
    }
    const op = this._inflight.get(f.ref);
    if (!op) return;
    this._inflight.delete(f.ref);
    op.ws = null;
    if (f.op === 'error') {
      const err = new SwitchboardError(f.code, f.message, f);
      if (f.code === 'unavailable' && RETRIED.has(op.frame.op) && op.unavailable < this.options.maxUnavailableRetries) {
        // The server is draining (or its storage failed): try again on this socket after a
        // backoff, or on the next one after the reconnect, whichever comes first.
        op.unavailable += 1;
        const ws = this._ws;
        setTimeout(() => { if (!op.done && !op.ws && this._ws === ws && this._welcomed) this._transmit(op); }, this._backoff(op.unavailable));
        return;
      }
      if (op.frame.op === 'leave' && f.code === 'not_found') return this._settle(op, 'resolve', f);
      if (op.frame.op === 'join') this._joinRefused(op, err);
      return this._settle(op, 'reject', err);
    }
    switch (op.frame.op) {
      case 'join': this._joined(op, f); break;
      case 'read': this._readUpTo(op.frame.channel, f.seq); break;
      case 'refresh': this.expiresAt = f.expires_at; this._scheduleRefresh(); break;
      case 'read_notifications': this._setNotificationsUnread(f.unread); break;
      default: break;
    }
    this._settle(op, 'resolve', f);
  }

  _settle(op, how, value) {
    if (op.done) return;
    op.done = true;
    const i = this._ops.indexOf(op);
    if (i >= 0) this._ops.splice(i, 1);
    op[how](value);
  }

  _joined(op, f) {
    const ch = this._channels.get(op.frame.channel);
    if (!ch) return; // left meanwhile
    if (f.channel && f.channel !== op.frame.channel) {
      // The server's canonical spelling of the name (lower-case, hyphenated UUID) is the key.
      this._channels.delete(op.frame.channel);
      this._channels.set(f.channel, ch);
    }
    ch.joined = true;
    ch.role = f.role;
    const since = op.sentSince;
    if (f.last_seq != null) {
      if (since != null && f.last_seq < since) {
        // The server is behind the client (e.g. a restored database): start over from it.
        ch.lastSeq = f.last_seq;
        ch.unreadSeqs = [];
        ch.readSeq = f.last_seq;
        this._emit('reset', { channel: f.channel, lastSeq: f.last_seq });
      } else if (since == null) {
        ch.lastSeq = Math.max(ch.lastSeq == null ? 0 : ch.lastSeq, f.last_seq);
      } else if (f.recovered === false && f.last_seq > ch.lastSeq && !ch.filling) {
        this._gap(f.channel, ch, f.last_seq);
      }
      if (ch.readSeq == null) {
        // Unread counts start at the join: what was there before counts as read.
        ch.readSeq = since != null ? since : f.last_seq;
        ch.unreadSeqs = ch.unreadSeqs.filter((s) => s > ch.readSeq);
        this._emit('unread', { channel: f.channel, count: ch.unreadSeqs.length });
      }
    }
    if (op.internal || op.rejoin) {
      this._emit('rejoin', { channel: f.channel, role: f.role, lastSeq: f.last_seq, replayed: f.replayed, recovered: f.recovered });
    }
  }

  _joinRefused(op, err) {
    // A refused rejoin (e.g. the subscription lapsed meanwhile): the channel is no longer joined.
    if (this._channels.has(op.frame.channel) && !this._channels.get(op.frame.channel).joined) {
      this._channels.delete(op.frame.channel);
    }
    if (op.internal) this._emit('error', Object.assign(err, { channel: op.frame.channel }));
  }

  _onMsg(f) {
    const ch = this._channels.get(f.channel);
    if (!ch) return; // not (or no longer) joined
    if (f.seq == null) return this._emit('message', f); // community.live: nothing to order
    if (ch.filling) { ch.buffer.push(f); return; }
    if (ch.lastSeq != null && f.seq <= ch.lastSeq) return; // already delivered
    if (ch.lastSeq != null && f.seq > ch.lastSeq + 1) {
      ch.buffer.push(f);
      this._gap(f.channel, ch, f.seq - 1);
      return;
    }
    this._deliver(f.channel, ch, f);
  }

  _deliver(name, ch, f) {
    ch.lastSeq = f.seq;
    if (f.user_id !== this.userId && (ch.readSeq == null || f.seq > ch.readSeq)) {
      ch.unreadSeqs.push(f.seq);
      this._emit('unread', { channel: name, count: ch.unreadSeqs.length });
    }
    this._emit('message', f);
  }

  /** Messages lastSeq+1 .. upto are missing: fetch them with history (or report the gap). */
  async _gap(name, ch, upto) {
    if (!this.options.fillGaps) {
      this._emit('gap', { channel: name, from: ch.lastSeq + 1, to: upto });
      ch.lastSeq = upto;
      this._drainBuffer(name, ch);
      return;
    }
    ch.filling = true;
    try {
      while (ch.lastSeq < upto && this._channels.get(name) === ch) {
        const page = await this.history(name, { after: ch.lastSeq, limit: 100 });
        if (!page.length) break;
        for (const m of page) if (m.seq > ch.lastSeq) this._deliver(name, ch, m);
      }
    } catch (err) {
      this._emit('error', err);
    } finally {
      ch.filling = false;
      this._drainBuffer(name, ch);
    }
  }

  _drainBuffer(name, ch) {
    const buffered = ch.buffer.sort((a, b) => a.seq - b.seq);
    ch.buffer = [];
    for (const m of buffered) this._onMsg(m);
  }

  _readUpTo(channel, seq) {
    const ch = this._channels.get(channel);
    if (!ch || seq == null) return;
    if (ch.readSeq != null && seq <= ch.readSeq && ch.unreadSeqs.every((s) => s > seq)) return;
    ch.readSeq = Math.max(ch.readSeq == null ? 0 : ch.readSeq, seq);
    ch.unreadSeqs = ch.unreadSeqs.filter((s) => s > ch.readSeq);
    this._emit('unread', { channel, count: ch.unreadSeqs.length });
  }

  _setNotificationsUnread(n) {
    if (n == null) return;
    this._notificationsUnread = n;
    this._emit('unread', { channel: this.userStream, count: n });
  }

  _onEvent(f) {
    if (f.kind === 'read' && f.user_id === this.userId) this._readUpTo(f.channel, f.seq);
    else if (f.kind === 'removed') this._channels.delete(f.channel);
    else if (f.kind === 'notifications_read') this._setNotificationsUnread(f.unread);
    else if (f.kind === 'token_expired' && typeof this.options.token === 'function') this.refresh().catch((e) => this._emit('error', e));
    this._emit('event', f);
  }

  _onNotification(f) {
    if (this._seenNotifications.has(f.id)) return;
    this._seenNotifications.add(f.id);
    this._seenOrder.push(f.id);
    if (this._seenOrder.length > 5000) this._seenNotifications.delete(this._seenOrder.shift());
    // Missed ones are already counted in the connect-time `unread`.
    if (!f.missed) this._setNotificationsUnread(this._notificationsUnread + 1);
    this._emit('notification', f);
  }

  // --- token refresh and heartbeat ------------------------------------------------------------

  _scheduleRefresh() {
    if (this._timers.refresh) clearTimeout(this._timers.refresh);
    this._timers.refresh = null;
    if (typeof this.options.token !== 'function' || this.expiresAt == null) return;
    const lifetime = this.expiresAt * 1000 - (Date.now() + this.clockSkewMs);
    const delay = Math.max(0, lifetime * this.options.refreshRatio);
    this._timers.refresh = setTimeout(() => {
      this._timers.refresh = null;
      this.refresh().catch((e) => this._emit('error', e));
    }, delay);
    if (typeof this._timers.refresh.unref === 'function') this._timers.refresh.unref();
  }

  /** Present a new token from the provider on the open socket (done automatically). */
  async refresh() {
    if (typeof this.options.token !== 'function') throw new SwitchboardError('bad_request', 'refresh needs a token provider');
    const token = await this._token();
    if (!this._welcomed) return undefined; // the next connection uses a fresh token anyway
    return this._request({ op: 'refresh', token });
  }

  _startHeartbeat() {
    const every = this.options.heartbeatMs;
    if (!every) return;
    const tick = () => {
      const ws = this._ws;
      if (!ws || !this._welcomed) return;
      const idle = Date.now() - this._lastFrameAt;
      if (idle >= every) {
        this._request({ op: 'ping' }).catch(() => {});
        this._timers.heartbeatDeadline = setTimeout(() => {
          if (this._ws === ws && Date.now() - this._lastFrameAt >= this.options.heartbeatTimeoutMs) {
            this._lost(ws, 4000, 'heartbeat timeout');
          }
        }, this.options.heartbeatTimeoutMs);
        if (typeof this._timers.heartbeatDeadline.unref === 'function') this._timers.heartbeatDeadline.unref();
      }
      this._timers.heartbeat = setTimeout(tick, Math.max(1000, every - Math.min(idle, every)));
      if (typeof this._timers.heartbeat.unref === 'function') this._timers.heartbeat.unref();
    };
    this._timers.heartbeat = setTimeout(tick, every);
    if (typeof this._timers.heartbeat.unref === 'function') this._timers.heartbeat.unref();
  }

  // --- requests ---------------------------------------------------------------------------------

  _request(frame, extra = {}) {
    if (this._state === 'closed') return Promise.reject(new SwitchboardError('closed', 'client is closed'));
    return new Promise((resolve, reject) => {
      const op = { frame, resolve, reject, ws: null, done: false, unavailable: 0, ...extra };
      this._ops.push(op);
      if (this._ws && this._welcomed) this._transmit(op);
      else if (!RETRIED.has(frame.op)) {
        this._settle(op, 'resolve', undefined); // typing, leave or refresh while offline: moot
      }
    });
  }

  _transmit(op) {
    const ws = this._ws;
    if (!ws || op.done) return;
    const ref = ++this._ref;
    const frame = { ...op.frame, ref };
    if (frame.op === 'join') {
      const ch = this._channels.get(frame.channel);
      if (!ch) return this._settle(op, 'resolve', undefined); // left before it was sent
      if (ch.lastSeq != null && ch.sequenced !== false) frame.since = ch.lastSeq;
      op.sentSince = frame.since;
      if (ch.everJoined) op.rejoin = true;
      ch.everJoined = true;
    }
    op.ws = ws;
    this._inflight.set(ref, op);
    try {
      this._write(ws, frame);
    } catch (err) {
      this._inflight.delete(ref);
      op.ws = null;
    }
  }

  /** Join a channel (kept joined across reconnects). `since`: resume after this seq. */
  join(channel, options = {}) {
    let ch = this._channels.get(channel);
    if (!ch) {
      ch = { joined: false, role: null, lastSeq: null, readSeq: null, unreadSeqs: [], filling: false, buffer: [], everJoined: false };
      ch.sequenced = parseChannel(channel).namespace.split('.').pop() !== 'live';
      this._channels.set(channel, ch);
    }
    if (options.since != null) ch.lastSeq = options.since;
    if (options.readSeq != null) ch.readSeq = options.readSeq;
    return this._request({ op: 'join', channel }).then((f) => {
      if (f === undefined) throw new SwitchboardError('not_found', `left ${channel} before it was joined`);
      return f;
    });
  }

  /** Leave a channel; it is no longer rejoined. */
  leave(channel) {
    const had = this._channels.delete(channel);
    if (!had || !this._welcomed) return Promise.resolve(undefined);
    return this._request({ op: 'leave', channel });
  }

  /**
   * Send a message; resolves with the ack (`{id, seq, created_at, duplicate?}`) once it is
   * committed, across reconnects (the retry reuses the same client_id), or rejects with a
   * SwitchboardError carrying the server's code.
   */
  send(channel, text, options = {}) {
    const frame = { op: 'send', channel, text, client_id: options.clientId || newClientId() };
    if (options.type) frame.type = options.type;
    if (options.replyTo) frame.reply_to = options.replyTo;
    if (options.attachmentUrl) frame.attachment_url = options.attachmentUrl;
    return this._request(frame);
  }

  /** A page of messages (ascending seq), current state. */
  async history(channel, options = {}) {
    const frame = { op: 'history', channel };
    if (options.before != null) frame.before = options.before;
    if (options.after != null) frame.after = options.after;
    if (options.limit != null) frame.limit = options.limit;
    const ok = await this._request(frame);
    return ok.messages || [];
  }

  /** Show the typing indicator to the channel (best effort; nothing is sent while offline). */
  typing(channel) {
    if (!this._ws || !this._welcomed) return Promise.resolve(undefined);
    return this._request({ op: 'typing', channel }).then(() => undefined);
  }

  /** Mark the channel read up to `seq`; resolves with the stored position. */
  async read(channel, seq) {
    const ok = await this._request({ op: 'read', channel, seq });
    return ok.seq;
  }

  /** The users present in a channel (sorted user ids). */
  async presence(channel) {
    const ok = await this._request({ op: 'presence', channel });
    return ok.users || [];
  }

  /** Mark notifications read: an array of ids, or 'all'. Resolves with `{marked, unread}`. */
  async readNotifications(ids) {
    const frame = ids === 'all' ? { op: 'read_notifications', all: true } : { op: 'read_notifications', ids };
    const ok = await this._request(frame);
    return { marked: ok.marked, unread: ok.unread };
  }

  /** Round trip to the server; resolves with the server time in Unix ms. */
  async ping() {
    const pong = await this._request({ op: 'ping' });
    return pong.server_time;
  }
}

export default SwitchboardClient;
