// The test driver of the JS client, shared by Node (node_driver.mjs) and the browser page
// (page.html): pytest sends commands as JSON objects, this runs them on SwitchboardClient
// instances and answers with JSON-able results. Every client's callbacks are recorded so
// that the test can wait for them (event-driven, with a deadline) and assert on them.

export function makeDriver(SwitchboardClient, { WebSocket } = {}) {
  const clients = new Map(); // name -> { client, rec }
  const started = new Map(); // key -> promise of a result
  const waiters = new Set(); // { check, resolve }

  const recorder = (client) => {
    const rec = { messages: [], states: [], events: [], notifications: [], errors: [], rejoins: [], resets: [], unreadChanges: 0 };
    const changed = () => { for (const w of [...waiters]) w.check(); };
    client.on('message', (m) => {
      rec.messages.push({ channel: m.channel, seq: m.seq ?? null, id: m.id, user_id: m.user_id, client_id: m.client_id ?? null, text: m.text });
      changed();
    });
    client.on('state', (s) => { rec.states.push({ state: s.state, code: s.code ?? null, reason: s.reason ?? null }); changed(); });
    client.on('event', (e) => { rec.events.push(e); changed(); });
    client.on('notification', (n) => { rec.notifications.push(n); changed(); });
    client.on('error', (e) => { rec.errors.push({ code: e.code ?? null, message: String(e.message) }); changed(); });
    client.on('rejoin', (r) => { rec.rejoins.push(r); changed(); });
    client.on('reset', (r) => { rec.resets.push(r); changed(); });
    client.on('unread', () => { rec.unreadChanges += 1; changed(); });
    return rec;
  };

  const entry = (name) => {
    const e = clients.get(name);
    if (!e) throw new Error(`no client ${name}`);
    return e;
  };

  const selected = (rec, cmd) => {
    switch (cmd.what) {
      case 'messages': return rec.messages.filter((m) => !cmd.channel || m.channel === cmd.channel);
      case 'states': return rec.states.filter((s) => !cmd.state || s.state === cmd.state);
      case 'events': return rec.events.filter((e) => (!cmd.kind || e.kind === cmd.kind) && (!cmd.channel || e.channel === cmd.channel));
      case 'notifications': return rec.notifications;
      case 'errors': return rec.errors;
      case 'rejoins': return rec.rejoins;
      default: throw new Error(`cannot wait for ${cmd.what}`);
    }
  };

  const waitFor = (cmd) => {
    const { rec } = entry(cmd.name);
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          const items = selected(rec, cmd);
          if (items.length >= cmd.count) { waiters.delete(w); clearTimeout(w.timer); resolve(items); }
        },
      };
      w.timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`timed out waiting for ${cmd.count} ${cmd.what} (have ${selected(rec, cmd).length}): ${JSON.stringify(selected(rec, cmd)).slice(0, 800)}`));
      }, cmd.timeoutMs ?? 20000);
      waiters.add(w);
      w.check();
    });
  };

  const invoke = (client, method, a) => {
    switch (method) {
      case 'join': return client.join(a.channel, { since: a.since });
      case 'leave': return client.leave(a.channel);
      case 'send': return client.send(a.channel, a.text, { clientId: a.clientId });
      case 'history': return client.history(a.channel, { before: a.before, after: a.after, limit: a.limit });
      case 'typing': return client.typing(a.channel);
      case 'read': return client.read(a.channel, a.seq);
      case 'presence': return client.presence(a.channel);
      case 'readNotifications': return client.readNotifications(a.ids ?? 'all');
      case 'ping': return client.ping();
      case 'refresh': return client.refresh();
      default: throw new Error(`unknown method ${method}`);
    }
  };

  const outcome = (promise) => Promise.resolve(promise).then(
    (value) => ({ ok: value === undefined ? null : value }),
    (err) => ({ error: { code: err.code ?? null, message: String(err.message) } }),
  );

  const snapshot = (name) => {
    const { client, rec } = entry(name);
    const unread = {};
    for (const ch of client.channels) unread[ch] = client.unread(ch);
    const lastSeq = {};
    for (const ch of client.channels) lastSeq[ch] = client.lastSeq(ch);
    return { ...rec, state: client.state, sessionId: client.sessionId, userId: client.userId, userStream: client.userStream, unread, lastSeq, notificationsUnread: client.notificationsUnread };
  };

  return async function handle(cmd) {
    switch (cmd.cmd) {
      case 'connect': {
        const token = cmd.token != null ? cmd.token : async () => {
          const res = await fetch(`${cmd.tokenUrl}?user=${encodeURIComponent(cmd.user)}&ttl=${cmd.ttl ?? 600}`);
          if (!res.ok) throw new Error(`token endpoint: ${res.status}`);
          return res.text();
        };
        const client = new SwitchboardClient({
          url: cmd.url,
          token,
          WebSocket,
          format: cmd.format ?? 'json',
          auth: cmd.auth ?? 'frame',
          reconnect: { initialDelayMs: 100, maxDelayMs: cmd.backoffMaxMs ?? 1000 },
        });
        const rec = recorder(client);
        clients.set(cmd.name, { client, rec });
        const result = await outcome(client.connect());
        if (result.ok) result.ok = { userId: client.userId, sessionId: client.sessionId, userStream: client.userStream };
        return result;
      }
      case 'call': return outcome(invoke(entry(cmd.name).client, cmd.method, cmd.args || {}));
      case 'start': started.set(cmd.key, outcome(invoke(entry(cmd.name).client, cmd.method, cmd.args || {}))); return { ok: null };
      case 'result': return started.get(cmd.key);
      case 'wait': return outcome(waitFor(cmd));
      case 'snapshot': return { ok: snapshot(cmd.name) };
      case 'close': entry(cmd.name).client.close(); return { ok: snapshot(cmd.name) };
      case 'closeAll': for (const { client } of clients.values()) client.close(); return { ok: null };
      default: return { error: { code: 'driver', message: `unknown command ${cmd.cmd}` } };
    }
  };
}
