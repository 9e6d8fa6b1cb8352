// The channel list and the open channel: history with infinite scroll (older pages load as
// the list is scrolled to the top), live messages, presence, typing, read receipts and unread
// badges, all from the gateway through clients/js/switchboard.js.

const PAGE = 30; // messages per history page
const NEAR = 80; // px from an edge that counts as "at" it

const $ = (selector) => document.querySelector(selector);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

const clock = (iso) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
};

class Room {
  constructor(channel, info) {
    this.channel = channel; // community:<id>
    this.info = info; // {id, channel_name, channel_type, description, analyst_id, analystName}
    this.status = 'joining'; // joining | joined | locked
    this.reason = '';
    this.role = null;
    this.messages = new Map(); // seq -> msg frame
    this.loaded = false;
    this.loadingOlder = false;
    this.reads = new Map(); // user id -> read position (from live `read` events)
    this.typing = new Map(); // user id -> timer
    this.online = new Set();
    this.readSent = 0;
    this.unread = 0;
  }

  get oldest() {
    let min = Infinity;
    for (const seq of this.messages.keys()) if (seq < min) min = seq;
    return min === Infinity ? null : min;
  }

  // Seqs are gap-free from 1: anything above the oldest loaded one exists.
  get hasOlder() {
    const oldest = this.oldest;
    return oldest !== null && oldest > 1;
  }

  sorted() {
    return [...this.messages.values()].sort((a, b) => a.seq - b.seq);
  }
}

export class Chat {
  constructor({ client, userId, nameOf, toast }) {
    this.client = client;
    this.userId = userId;
    this.nameOf = nameOf;
    this.toast = toast;
    this.rooms = new Map();
    this.groups = []; // [{title, rooms: [channel]}]
    this.current = null;
    this._typingSentAt = 0;

    client.on('message', (m) => this._onMessage(m));
    client.on('event', (e) => this._onEvent(e));
    client.on('unread', ({ channel, count }) => this._onUnread(channel, count));
    client.on('rejoin', ({ channel }) => this._onRejoin(channel));
    client.on('error', (err) => {
      if (err && err.channel && this.rooms.has(err.channel)) this._lock(this.rooms.get(err.channel), err.message);
    });

    $('#messages').addEventListener('scroll', () => {
      if (this.current && $('#messages').scrollTop < NEAR) this.loadOlder(this.current);
    });
    $('#composer').addEventListener('submit', (event) => {
      event.preventDefault();
      this._send();
    });
    $('#text').addEventListener('input', () => this._typed());
    document.addEventListener('visibilitychange', () => {
      if (this.current) this._markRead(this.current);
    });
  }

  /** Channels of one analyst, shown under their name. */
  addGroup(title, channels) {
    const names = [];
    const order = { community: 0, premium: 1, support: 2 };
    const sorted = [...channels].sort(
      (a, b) => (order[a.channel_type] ?? 3) - (order[b.channel_type] ?? 3) || a.channel_name.localeCompare(b.channel_name),
    );
    for (const info of sorted) {
      const channel = `community:${info.id}`;
      this.rooms.set(channel, new Room(channel, info));
      names.push(channel);
    }
    if (names.length) this.groups.push({ title, rooms: names });
    this.renderSidebar();
  }

  /** Join every listed channel: live messages and unread counts for all of them. */
  async joinAll() {
    await Promise.all(
      [...this.rooms.values()].map(async (room) => {
        try {
          const ok = await this.client.join(room.channel);
          room.status = 'joined';
          room.role = ok.role;
        } catch (err) {
          this._lock(room, err.message);
        }
        this._renderRoomButton(room);
        if (this.current === room) this.open(room.channel); // opened while it was joining
      }),
    );
  }

  firstJoined() {
    for (const group of this.groups) {
      for (const name of group.rooms) if (this.rooms.get(name).status === 'joined') return name;
    }
    return null;
  }

  // --- the sidebar ------------------------------------------------------------------------

  renderSidebar() {
    const list = $('#channels');
    list.replaceChildren();
    for (const group of this.groups) {
      const box = el('div', 'group');
      box.append(el('h3', null, group.title));
      for (const name of group.rooms) {
        const room = this.rooms.get(name);
        const button = el('button', 'room');
        button.type = 'button';
        button.dataset.channel = name;
        button.append(el('span', 'hash', room.info.channel_type === 'premium' ? '★' : '#'));
        button.append(el('span', 'name', room.info.channel_name));
        button.append(el('span', 'lock', 'locked'));
        button.append(el('span', 'badge', '0'));
        button.addEventListener('click', () => this.open(name));
        box.append(button);
        this._renderRoomButton(room, button);
      }
      list.append(box);
    }
    if (!this.groups.length) list.append(el('p', 'muted small', 'No channels yet.'));
  }

  _renderRoomButton(room, button = document.querySelector(`.room[data-channel="${room.channel}"]`)) {
    if (!button) return;
    button.classList.toggle('active', this.current === room);
    button.classList.toggle('locked', room.status === 'locked');
    button.classList.toggle('unread', room.unread > 0);
    button.title = room.status === 'locked' ? room.reason : room.info.description || '';
    const badge = button.querySelector('.badge');
    badge.textContent = String(room.unread);
    badge.hidden = room.unread === 0;
    button.querySelector('.lock').hidden = room.status !== 'locked';
  }

  // --- the open channel ---------------------------------------------------------------------

  async open(name) {
    const room = this.rooms.get(name);
    if (!room) return;
    const previous = this.current;
    this.current = room;
    if (previous) this._renderRoomButton(previous);
    this._renderRoomButton(room);
    $('#chat-empty').hidden = true;
    $('#chat-room').hidden = false;
    $('#chat-room').dataset.channel = name;
    $('#room-title').textContent = `${room.info.channel_type === 'premium' ? '★' : '#'} ${room.info.channel_name}`;
    this._renderHead(room);
    history.replaceState(null, '', `#channel=${room.info.id}`);
    this._renderLocked(room);
    if (room.status !== 'joined') return;
    if (!room.loaded) {
      try {
        const page = await this.client.history(name, { limit: PAGE });
        for (const m of page) room.messages.set(m.seq, m);
        room.loaded = true;
      } catch (err) {
        this.toast(`Could not load the messages: ${err.message}`);
        return;
      }
    }
    if (this.current !== room) return;
    this._renderMessages(room, 'bottom');
    this._markRead(room);
    await this._refreshPresence(room);
    $('#text').focus();
  }

  async loadOlder(room) {
    if (!room.loaded || room.loadingOlder || !room.hasOlder || room.status !== 'joined') return;
    room.loadingOlder = true;
    $('#older').textContent = 'Loading older messages…';
    try {
      const page = await this.client.history(room.channel, { before: room.oldest, limit: PAGE });
      for (const m of page) room.messages.set(m.seq, m);
    } catch (err) {
      this.toast(`Could not load older messages: ${err.message}`);
    } finally {
      room.loadingOlder = false;
    }
    if (this.current === room) this._renderMessages(room, 'anchor');
  }

  _renderHead(room) {
    const parts = [room.info.analystName, room.info.channel_type];
    if (room.role) parts.push(`you: ${room.role}`);
    $('#room-sub').textContent = parts.filter(Boolean).join(' · ');
  }

  _renderLocked(room) {
    const locked = room.status !== 'joined';
    $('#locked').hidden = !locked;
    $('#locked').textContent = room.status === 'joining' ? 'Joining…' : `You cannot join this channel: ${room.reason}`;
    $('#messages').hidden = locked;
    $('#composer').hidden = locked;
    $('#typing').textContent = '';
    if (locked) $('#presence').replaceChildren();
  }

  /** `keep`: 'bottom' scrolls to the newest message, 'anchor' keeps what is on screen in
   * place (older messages were added above), 'follow' scrolls down only if already there. */
  _renderMessages(room, keep) {
    const box = $('#messages');
    const fromBottom = box.scrollHeight - box.scrollTop;
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < NEAR;
    const messages = room.sorted();
    const readers = this._readersBySeq(room, messages);
    const frag = document.createDocumentFragment();
    for (const m of messages) frag.append(this._messageNode(m, readers.get(m.seq)));
    const older = $('#older');
    older.textContent = room.hasOlder ? '' : 'This is the beginning of the channel.';
    box.replaceChildren(older, frag);
    if (keep === 'bottom' || (keep === 'follow' && atBottom)) box.scrollTop = box.scrollHeight;
    else if (keep === 'anchor') box.scrollTop = box.scrollHeight - fromBottom;
  }

  _messageNode(m, readers) {
    const mine = m.user_id === this.userId;
    const node = el('div', `msg${mine ? ' mine' : ''}${m.deleted ? ' deleted' : ''}${m.type === 'system' ? ' system' : ''}`);
    node.dataset.seq = String(m.seq);
    node.dataset.id = m.id;
    const meta = el('div', 'meta');
    meta.append(el('span', 'author', this.nameOf(m.user_id)));
    meta.append(el('time', null, clock(m.created_at)));
    if (m.edited_at) meta.append(el('span', 'edited', 'edited'));
    node.append(meta);
    node.append(el('div', 'text', m.deleted ? 'message deleted' : m.text));
    if (readers && readers.length) node.append(el('div', 'receipt', `✓ Seen by ${readers.join(', ')}`));
    return node;
  }

  /** Read receipts: each other member's read position, shown under the newest loaded
   * message at or below it. */
  _readersBySeq(room, messages) {
    const bySeq = new Map();
    for (const [user, seq] of room.reads) {
      if (user === this.userId) continue;
      let at = null;
      for (const m of messages) if (m.seq <= seq) at = m.seq;
      if (at === null) continue;
      if (!bySeq.has(at)) bySeq.set(at, []);
      bySeq.get(at).push(this.nameOf(user));
    }
    return bySeq;
  }

  _renderTyping(room) {
    if (this.current !== room) return;
    const names = [...room.typing.keys()].map((u) => this.nameOf(u));
    let text = '';
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length > 1) text = `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]} are typing…`;
    $('#typing').textContent = text;
  }

  _renderPresence(room) {
    if (this.current !== room) return;
    const users = [...room.online].sort((a, b) => (a === this.userId ? -1 : b === this.userId ? 1 : this.nameOf(a).localeCompare(this.nameOf(b))));
    const list = $('#presence');
    list.replaceChildren(
      ...users.map((user) => {
        const item = el('li', 'online');
        item.dataset.user = user;
        item.append(el('span', 'dot'));
        item.append(document.createTextNode(this.nameOf(user)));
        return item;
      }),
    );
    list.title = `${users.length} online`;
  }

  async _refreshPresence(room) {
    if (room.status !== 'joined') return;
    try {
      room.online = new Set(await this.client.presence(room.channel));
    } catch (_) {
      return;
    }
    this._renderPresence(room);
  }

  // --- what the gateway tells ---------------------------------------------------------------

  _onMessage(m) {
    const room = this.rooms.get(m.channel);
    if (!room || m.seq == null) return;
    room.messages.set(m.seq, m);
    const typing = room.typing.get(m.user_id);
    if (typing) {
      clearTimeout(typing);
      room.typing.delete(m.user_id);
      this._renderTyping(room);
    }
    if (this.current === room && room.loaded) {
      this._renderMessages(room, m.user_id === this.userId ? 'bottom' : 'follow');
      this._markRead(room);
    }
  }

  _onEvent(e) {
    const room = this.rooms.get(e.channel);
    if (!room) return;
    switch (e.kind) {
      case 'typing': {
        if (e.user_id === this.userId) return;
        clearTimeout(room.typing.get(e.user_id));
        room.typing.set(
          e.user_id,
          setTimeout(() => {
            room.typing.delete(e.user_id);
            this._renderTyping(room);
          }, e.expires_in_ms || 5000),
        );
        this._renderTyping(room);
        return;
      }
      case 'read':
        room.reads.set(e.user_id, Math.max(room.reads.get(e.user_id) || 0, e.seq));
        if (this.current === room && room.loaded) this._renderMessages(room, 'follow');
        return;
      case 'joined':
        room.online.add(e.user_id);
        this._renderPresence(room);
        return;
      case 'left': // per socket: the user may still be here through another one
        this._refreshPresence(room);
        return;
      case 'edited':
      case 'deleted': {
        const m = room.messages.get(e.seq);
        if (!m || m.id !== e.id) return;
        if (e.kind === 'edited') room.messages.set(e.seq, { ...m, text: e.text, edited_at: e.at });
        else room.messages.set(e.seq, { ...m, text: '', deleted: true });
        if (this.current === room && room.loaded) this._renderMessages(room, 'follow');
        return;
      }
      case 'removed':
        this._lock(room, e.reason || 'removed');
        return;
      default:
    }
  }

  _onUnread(channel, count) {
    const room = this.rooms.get(channel);
    if (!room) return;
    room.unread = count;
    this._renderRoomButton(room);
  }

  _onRejoin(channel) {
    // Events are not replayed (protocol §7.5): presence and typing start over.
    const room = this.rooms.get(channel);
    if (!room) return;
    room.status = 'joined';
    for (const timer of room.typing.values()) clearTimeout(timer);
    room.typing.clear();
    this._renderTyping(room);
    this._renderRoomButton(room);
    if (this.current === room) this._refreshPresence(room);
  }

  _lock(room, reason) {
    room.status = 'locked';
    room.reason = reason || 'not allowed';
    room.online.clear();
    this._renderRoomButton(room);
    if (this.current === room) this._renderLocked(room);
  }

  // --- what the user does ---------------------------------------------------------------------

  _markRead(room) {
    if (document.visibilityState !== 'visible' || room.status !== 'joined') return;
    const last = this.client.lastSeq(room.channel);
    if (!last || last <= room.readSent) return;
    room.readSent = last;
    this.client.read(room.channel, last).catch(() => {
      room.readSent = 0;
    });
  }

  async _send() {
    const room = this.current;
    const input = $('#text');
    const text = input.value.trim();
    if (!room || room.status !== 'joined' || !text) return;
    input.value = '';
    try {
      await this.client.send(room.channel, text);
    } catch (err) {
      if (!input.value) input.value = text;
      this.toast(err.code === 'rate_limited' ? `Slow down: ${err.message}` : `Not sent: ${err.message}`);
    }
  }

  _typed() {
    const room = this.current;
    if (!room || room.status !== 'joined' || !$('#text').value) return;
    const now = Date.now();
    if (now - this._typingSentAt < 2000) return; // the indicator lasts 5 s
    this._typingSentAt = now;
    this.client.typing(room.channel).catch(() => {});
  }
}
