// Compiled (not run) by tests/clients/test_types.py with `tsc --noEmit --strict`: the
// declarations in clients/js/switchboard.d.ts must accept the documented usage and refuse
// misuse (each @ts-expect-error must be an error, or tsc fails).
import SwitchboardDefault, {
  SwitchboardClient,
  SwitchboardError,
  msgpack,
  parseChannel,
  type Message,
  type SendAck,
  type State,
} from '../../../clients/js/switchboard.js';

declare const WebSocketImpl: new (url: string, protocols?: string | string[]) => any;

export async function usage(): Promise<void> {
  const client = new SwitchboardClient({
    url: 'ws://127.0.0.1:8765/ws',
    token: async () => 'token',
    WebSocket: WebSocketImpl,
    format: 'msgpack',
    reconnect: { initialDelayMs: 100, maxDelayMs: 5000 },
  });
  const same: SwitchboardClient = new SwitchboardDefault({ url: 'ws://x/ws', token: 't' });
  const welcome = await client.connect();
  const userId: string = welcome.user_id;
  const room = 'community:0b7e9c3a-5d2f-4a1e-9c8b-7d6e5f4a3b2c';
  const joined = await client.join(room, { since: 42 });
  const role: 'member' | 'owner' | 'admin' | 'self' = joined.role;
  const ack: SendAck = await client.send(room, 'hello', { clientId: 'c-1', type: 'text' });
  const seq: number | undefined = ack.seq;
  const page: Message[] = await client.history(room, { before: 10, limit: 20 });
  const users: string[] = await client.presence(room);
  const stored: number = await client.read(room, 3);
  const badge = await client.readNotifications('all');
  const marked: number = badge.marked;
  const now: number = await client.ping();
  await client.typing(room);
  await client.leave(room);
  const off = client.on('message', (m) => {
    const text: string = m.text;
    const s: number | undefined = m.seq;
    void text;
    void s;
  });
  off();
  client.on('state', (s) => {
    const state: State = s.state;
    void state;
  });
  client.on('unread', ({ channel, count }) => void [channel, count]);
  client.on('error', (e) => {
    if (e instanceof SwitchboardError) void e.retryAfterMs;
  });
  const unread: number = client.unread(room);
  const last: number | null = client.lastSeq(room);
  const kind: string = parseChannel(room).namespace;
  const bytes: Uint8Array = msgpack.encode({ op: 'ping' });
  void msgpack.decode(bytes);
  client.close();
  void [same, userId, seq, page, users, stored, marked, now, unread, last, kind];

  // @ts-expect-error: a token is required
  new SwitchboardClient({ url: 'ws://x/ws' });
  // @ts-expect-error: the format is json or msgpack
  new SwitchboardClient({ url: 'ws://x/ws', token: 't', format: 'xml' });
  // @ts-expect-error: unknown event name
  client.on('messages', () => {});
  // @ts-expect-error: send takes the text as a string
  await client.send(room, 42);
  // @ts-expect-error: readNotifications takes ids or 'all'
  await client.readNotifications(true);
}
