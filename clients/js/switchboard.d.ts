// Types of switchboard.js: the Switchboard gateway client (wire protocol v1, docs/protocol.md).

export declare const JSON_SUBPROTOCOL: 'switchboard.v1.json';
export declare const MSGPACK_SUBPROTOCOL: 'switchboard.v1.msgpack';

/** The closed set of error codes of the protocol, plus the client's own `closed`. */
export type ErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'too_large'
  | 'rate_limited'
  | 'unavailable'
  | 'internal'
  | 'closed';

export declare class SwitchboardError extends Error {
  constructor(code: ErrorCode | string, message?: string, frame?: ErrorFrame);
  readonly code: ErrorCode | string;
  /** With `rate_limited`: wait at least this long before retrying. */
  readonly retryAfterMs: number | undefined;
  /** The server's `error` frame, when the server refused. */
  readonly frame: ErrorFrame | undefined;
  /** Set on errors of an automatic rejoin: the channel that could not be rejoined. */
  channel?: string;
}

export type State = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';
export type MessageType = 'text' | 'image' | 'file' | 'system';
export type Role = 'member' | 'owner' | 'admin' | 'self';

/** A constructor compatible with the browser's WebSocket (e.g. the `ws` package's). */
export interface WebSocketLike {
  readonly protocol: string;
  binaryType: string;
  onopen: ((ev: any) => void) | null;
  onmessage: ((ev: { data: any }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: any) => void) | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

export interface ReconnectOptions {
  /** Delay before the first retry (ms). Default 250. */
  initialDelayMs?: number;
  /** Largest delay (ms). Default 30000. */
  maxDelayMs?: number;
  /** Growth per failed attempt. Default 2. */
  factor?: number;
  /** Fraction of the delay taken off at random (0..1). Default 0.5. */
  jitter?: number;
}

export interface ClientOptions {
  /** `ws://host:port/ws` (or `wss://`). */
  url: string;
  /** An access token, or a provider called on every (re)connect and to refresh before expiry. */
  token: string | (() => string | Promise<string>);
  /** The WebSocket implementation; default `globalThis.WebSocket` (browsers, Node >= 22). */
  WebSocket?: WebSocketConstructor;
  /** Wire format. Default 'json'. 'msgpack' uses the built-in encoder (no dependency). */
  format?: 'json' | 'msgpack';
  /** 'frame' (default): an `auth` frame first; 'query': `?token=` in the URL. */
  auth?: 'frame' | 'query';
  /** Refresh at this fraction of the token's lifetime (provider only). Default 0.8. */
  refreshRatio?: number;
  /** Send a `ping` op after this much silence (ms); 0 turns it off. Default 25000. */
  heartbeatMs?: number;
  /** Give the socket up when nothing arrives this long after the ping (ms). Default 10000. */
  heartbeatTimeoutMs?: number;
  /** Consecutive 4001 closes (with a provider) before giving up. Default 3. */
  maxAuthFailures?: number;
  /** Retries of a request refused with `unavailable` before it is rejected. Default 10. */
  maxUnavailableRetries?: number;
  /** Fill holes in a channel's seq with `history` (default true); false: emit 'gap'. */
  fillGaps?: boolean;
  reconnect?: ReconnectOptions;
}

export interface Welcome {
  op: 'welcome';
  session_id: string;
  user_id: string;
  realm: string;
  expires_at: number;
  server_time: number;
  max_frame_bytes: number;
  frames_per_second: number;
}

export interface Message {
  op: 'msg';
  channel: string;
  /** Absent in `community.live` channels. */
  seq?: number;
  id: string;
  user_id: string;
  text: string;
  type: MessageType;
  created_at: string;
  reply_to?: string;
  client_id?: string;
  attachment_url?: string;
  deleted?: true;
  pinned?: true;
  edited_at?: string;
}

export interface ServerEvent {
  op: 'event';
  channel: string;
  kind:
    | 'joined' | 'left' | 'typing' | 'read' | 'edited' | 'deleted' | 'pinned' | 'unpinned'
    | 'removed' | 'token_expired' | 'notifications_read' | (string & {});
  user_id?: string;
  seq?: number;
  id?: string;
  by?: string;
  text?: string;
  at?: string;
  reason?: string;
  expires_in_ms?: number;
  ids?: string[];
  unread?: number;
}

export interface Notification {
  op: 'notification';
  channel: string;
  id: string;
  notification_type: string;
  title?: string;
  message?: string;
  action_url?: string;
  priority?: 'low' | 'medium' | 'high' | 'urgent';
  created_at?: string;
  /** Sent on connect for an unread notification the socket missed. */
  missed?: true;
}

export interface Ok {
  op: 'ok';
  ref?: number | string;
  channel?: string;
  id?: string;
  seq?: number;
  created_at?: string;
  duplicate?: true;
  role?: Role;
  last_seq?: number;
  recovered?: boolean;
  replayed?: number;
  messages?: Message[];
  users?: string[];
  expires_at?: number;
  unread?: number;
  missed?: number;
  marked?: number;
}

export interface ErrorFrame {
  op: 'error';
  code: ErrorCode;
  message: string;
  ref?: number | string;
  retry_after_ms?: number;
}

/** The ack of a send: the committed message's id, seq and time (`duplicate` on a retry). */
export interface SendAck extends Ok {
  channel: string;
  id: string;
  seq?: number;
  created_at: string;
}

export interface JoinAck extends Ok {
  channel: string;
  role: Role;
}

export interface StateChange {
  state: State;
  previous: State;
  attempt?: number;
  /** With 'reconnecting': the wait before the next attempt. */
  delayMs?: number;
  /** The close code that ended the socket (null: it never opened). */
  code?: number | null;
  reason?: string;
  sessionId?: string;
}

export interface UnreadChange {
  /** A channel, or the user stream for the notification badge. */
  channel: string;
  count: number;
}

export interface Rejoin {
  channel: string;
  role: Role;
  lastSeq?: number;
  replayed?: number;
  recovered?: boolean;
}

export interface ClientEvents {
  message: Message;
  event: ServerEvent;
  notification: Notification;
  state: StateChange;
  unread: UnreadChange;
  welcome: Welcome;
  /** A channel rejoined after a reconnect: refetch what events would have changed (§7.5). */
  rejoin: Rejoin;
  /** The server is behind the client's seq (e.g. a restored database): local copy is stale. */
  reset: { channel: string; lastSeq: number };
  /** With fillGaps: false, seqs from..to were skipped. */
  gap: { channel: string; from: number; to: number };
  error: SwitchboardError | Error;
}

export interface SendOptions {
  /** Idempotency key; generated (a UUID) when omitted and reused for retries. */
  clientId?: string;
  type?: MessageType;
  replyTo?: string;
  attachmentUrl?: string;
}

export interface HistoryOptions {
  before?: number;
  after?: number;
  /** 1..100, default 50. */
  limit?: number;
}

export interface JoinOptions {
  /** Resume after this seq (e.g. kept from a previous session). */
  since?: number;
  /** The user's read position, for unread counts (default: the seq at join). */
  readSeq?: number;
}

export declare class SwitchboardClient {
  constructor(options: ClientOptions);
  readonly options: Required<Omit<ClientOptions, 'WebSocket'>> & { WebSocket?: WebSocketConstructor };
  readonly state: State;
  welcome: Welcome | null;
  userId: string | null;
  sessionId: string | null;
  /** `user:<id>` (or `<realm>.user:<id>`), joined automatically. */
  userStream: string | null;
  /** Expiry of the current token (Unix seconds). */
  expiresAt: number | null;
  /** server_time - local time at the welcome (ms). */
  clockSkewMs: number;
  /** Unread in-app notifications (the badge). */
  readonly notificationsUnread: number;
  /** Channels joined (and rejoined after reconnects). */
  readonly channels: string[];
  /** The highest seq delivered to 'message' callbacks for the channel. */
  lastSeq(channel: string): number | null;
  /** Messages of other users after the read position. */
  unread(channel: string): number;
  role(channel: string): Role | null;

  on<K extends keyof ClientEvents>(name: K, callback: (payload: ClientEvents[K]) => void): () => void;
  off<K extends keyof ClientEvents>(name: K, callback: (payload: ClientEvents[K]) => void): void;

  /** Resolves with the welcome once connected (and the user stream joined). */
  connect(): Promise<Welcome>;
  /** Close for good; pending requests reject with code 'closed'. */
  close(): void;

  join(channel: string, options?: JoinOptions): Promise<JoinAck>;
  leave(channel: string): Promise<Ok | undefined>;
  send(channel: string, text: string, options?: SendOptions): Promise<SendAck>;
  history(channel: string, options?: HistoryOptions): Promise<Message[]>;
  typing(channel: string): Promise<void>;
  /** Resolves with the stored read position. */
  read(channel: string, seq: number): Promise<number>;
  presence(channel: string): Promise<string[]>;
  readNotifications(ids: string[] | 'all'): Promise<{ marked: number; unread: number }>;
  /** Resolves with the server time (Unix ms). */
  ping(): Promise<number>;
  refresh(): Promise<Ok | undefined>;
}

export declare function parseChannel(channel: string): {
  namespace: string;
  key: string;
  realm: string | null;
};

export declare const msgpack: {
  encode(value: unknown): Uint8Array;
  decode(bytes: Uint8Array | ArrayBuffer): unknown;
};

export default SwitchboardClient;
