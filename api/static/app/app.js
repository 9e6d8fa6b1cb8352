// The Switchboard demo app: sign in to the analyst realm (an e-mail code, shown on the page in
// dev mode; a password; or a new account), then chat in the channels of the realm's analysts
// and read the in-app notifications. REST calls go to this api, live traffic to the gateway
// through clients/js/switchboard.js (served at /app/switchboard.js).

import { SwitchboardClient } from '/app/switchboard.js';
import { ApiError, Session, auth, getConfig } from '/app/api.js';
import { Chat } from '/app/chat.js';

const $ = (selector) => document.querySelector(selector);

function show(section) {
  for (const id of ['boot', 'signin', 'main']) $(`#${id}`).hidden = id !== section;
}

function toast(text) {
  const node = document.createElement('div');
  node.className = 'toast';
  node.textContent = text;
  $('#toasts').append(node);
  setTimeout(() => node.remove(), 6000);
}

const when = (iso) => {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : d.toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
};

// --- sign in ------------------------------------------------------------------------------------

function signIn(config) {
  const prefix = config.api_prefix;
  let mode = 'code';
  let codeSent = false;
  $('#dev-links').hidden = !config.dev_mail;
  const error = (text) => { $('#signin-error').textContent = text || ''; };

  const render = () => {
    for (const tab of document.querySelectorAll('.tabs button')) tab.classList.toggle('active', tab.dataset.mode === mode);
    // The password: to sign in with it, and to choose one for a new account.
    for (const node of document.querySelectorAll('.for-password')) node.hidden = mode === 'code';
    for (const node of document.querySelectorAll('.for-signup')) node.hidden = mode !== 'signup';
    for (const node of document.querySelectorAll('.for-code-sent')) node.hidden = !codeSent;
    $('#password').required = mode !== 'code';
    $('#password').autocomplete = mode === 'signup' ? 'new-password' : 'current-password';
    $('#code').required = codeSent;
    $('#signin-submit').textContent =
      mode === 'password' ? 'Sign in' : codeSent ? (mode === 'signup' ? 'Create account' : 'Sign in') : 'Send code';
    if (!codeSent) $('#dev-code').hidden = true;
  };

  for (const tab of document.querySelectorAll('.tabs button')) {
    tab.addEventListener('click', () => {
      mode = tab.dataset.mode;
      codeSent = false;
      error();
      render();
    });
  }
  $('#email').addEventListener('input', () => {
    if (codeSent) { codeSent = false; render(); }
  });

  const showDevCode = (mail, email) => {
    const box = $('#dev-code');
    box.replaceChildren();
    box.hidden = false;
    if (!mail) {
      box.textContent = mode === 'signup'
        ? `No code was sent to ${email}: it may have an account already (sign in instead).`
        : `No code was sent to ${email}: is there an account? (New account creates one.)`;
      return;
    }
    const text = document.createElement('span');
    text.append('Dev mode: the code sent to ', mail.to, ' is ');
    const code = document.createElement('b');
    code.className = 'code';
    code.textContent = mail.code;
    text.append(code);
    const use = document.createElement('button');
    use.type = 'button';
    use.id = 'use-code';
    use.className = 'link';
    use.textContent = 'Use it';
    use.addEventListener('click', () => { $('#code').value = mail.code; $('#code').focus(); });
    box.append(text, ' ', use);
  };

  $('#signin-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    error();
    const email = $('#email').value.trim();
    const button = $('#signin-submit');
    button.disabled = true;
    try {
      if (mode === 'password') {
        done(Session.fromLogin(prefix, await auth.loginWithPassword(prefix, email, $('#password').value)));
      } else if (!codeSent) {
        const before = config.dev_mail ? await auth.devCode(email) : null;
        await auth.sendCode(prefix, email, mode === 'signup' ? 'signup' : 'login');
        codeSent = true;
        render();
        if (config.dev_mail) {
          const after = await auth.devCode(email);
          showDevCode(after && (!before || after.id !== before.id) ? after : null, email);
        }
        $('#code').focus();
      } else if (mode === 'signup') {
        const answer = await auth.signup(prefix, email, $('#password').value, $('#code').value.trim(), $('#user-type').value);
        done(Session.fromLogin(prefix, answer));
      } else {
        done(Session.fromLogin(prefix, await auth.loginWithCode(prefix, email, $('#code').value.trim())));
      }
    } catch (err) {
      error(err instanceof ApiError ? err.message : String(err));
    } finally {
      button.disabled = false;
    }
  });

  const done = (session) => {
    codeSent = false;
    $('#code').value = '';
    $('#password').value = '';
    render();
    start(config, session);
  };

  render();
  show('signin');
}

// --- the app ------------------------------------------------------------------------------------

/** Analysts of the realm and their channels (an analyst sees their own first). */
async function directory(session, me) {
  const names = new Map();
  const analysts = (await session.call('GET', '/analysts?limit=50')).items;
  for (const a of analysts) names.set(a.analyst_id, a.display_name);
  let ids = analysts.map((a) => a.analyst_id);
  if (me.user_type === 'analyst') {
    if (!names.has(me.id)) {
      const own = await session.call('GET', '/me/profile').catch(() => null);
      names.set(me.id, own ? own.display_name : 'You');
    }
    ids = [me.id, ...ids.filter((id) => id !== me.id)];
  }
  const groups = await Promise.all(
    ids.map(async (id) => ({ id, channels: (await session.call('GET', `/channels?analyst_id=${id}&limit=50`)).items })),
  );
  return { names, groups };
}

async function start(config, session) {
  show('boot');
  let me;
  try {
    me = await session.call('GET', '/me');
  } catch (err) {
    session.clear();
    signIn(config);
    if (err instanceof ApiError) $('#signin-error').textContent = `Please sign in again (${err.message}).`;
    return;
  }
  const { names, groups } = await directory(session, me);
  const nameOf = (id) => (id === me.id ? 'You' : names.get(id) || (id ? `User ${id.slice(0, 4)}` : 'System'));

  show('main');
  $('#me').textContent = `${me.email || me.phone} · ${me.user_type}`;
  const client = new SwitchboardClient({ url: config.gateway_url, token: () => session.token() });
  window.switchboard = { client, session, me }; // for the console
  const conn = $('#conn');
  client.on('state', ({ state, code, reason }) => {
    conn.dataset.state = state;
    conn.textContent = { connected: 'live', connecting: 'connecting…', reconnecting: 'reconnecting…', closed: 'offline', idle: 'offline' }[state] || state;
    if (state === 'closed' && code === 4001) toast(`Signed out by the server: ${reason || 'token refused'}`);
  });

  const chat = new Chat({ client, userId: me.id, nameOf, toast });
  for (const g of groups) {
    for (const c of g.channels) c.analystName = names.get(g.id) || nameOf(g.id);
    chat.addGroup(g.id === me.id ? `${names.get(me.id)} (you)` : names.get(g.id) || nameOf(g.id), g.channels);
  }
  const bell = notifications(session, client);

  $('#signout').onclick = async () => {
    client.close();
    await session.logout();
    location.hash = '';
    location.reload();
  };

  await client.connect();
  bell.badge(client.notificationsUnread);
  await chat.joinAll();
  const wanted = new URLSearchParams(location.hash.slice(1)).get('channel');
  const first = wanted && chat.rooms.has(`community:${wanted}`) ? `community:${wanted}` : chat.firstJoined();
  if (first) await chat.open(first);
  document.body.dataset.ready = 'true';
}

// --- the notification bell ------------------------------------------------------------------------

function notifications(session, client) {
  const list = $('#notifications');
  const panel = $('#bell-panel');
  let loaded = false;
  let cursor = null;

  const badge = (count) => {
    $('#bell-count').textContent = String(count);
    $('#bell-count').hidden = !count;
    document.title = count ? `(${count}) Switchboard` : 'Switchboard';
  };

  const markedRead = (node) => {
    node.classList.remove('unread');
    const button = node.querySelector('button');
    if (button) button.remove();
  };

  const item = (n) => {
    const node = document.createElement('li');
    node.className = `notif${n.read_at ? '' : ' unread'}`;
    node.dataset.id = n.id;
    const title = document.createElement('strong');
    title.textContent = n.title || n.notification_type;
    const body = document.createElement('p');
    body.textContent = n.message || '';
    const time = document.createElement('time');
    time.textContent = when(n.created_at);
    node.append(title, body, time);
    if (!n.read_at) {
      const read = document.createElement('button');
      read.type = 'button';
      read.className = 'link mark-read';
      read.textContent = 'Mark read';
      read.addEventListener('click', async () => {
        await session.call('POST', `/inbox/notifications/${n.id}/read`);
        markedRead(node);
      });
      node.append(read);
    }
    return node;
  };

  const load = async (more) => {
    const query = `/inbox/notifications?limit=20${more && cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = await session.call('GET', query);
    if (!more) list.replaceChildren();
    list.append(...page.items.map(item));
    cursor = page.next_cursor;
    $('#more-notifications').hidden = !cursor;
    if (!list.children.length) {
      const empty = document.createElement('li');
      empty.className = 'muted small empty';
      empty.textContent = 'Nothing yet.';
      list.append(empty);
    }
    loaded = true;
  };

  $('#bell').addEventListener('click', async () => {
    panel.hidden = !panel.hidden;
    if (!panel.hidden) await load(false);
  });
  $('#more-notifications').addEventListener('click', () => load(true));
  $('#read-all').addEventListener('click', async () => {
    await session.call('POST', '/inbox/read-all');
    for (const node of list.querySelectorAll('.notif.unread')) markedRead(node);
  });

  client.on('unread', ({ channel, count }) => {
    if (channel === client.userStream) badge(count);
  });
  client.on('notification', (n) => {
    if (loaded && !list.querySelector(`[data-id="${n.id}"]`)) {
      const empty = list.querySelector('.empty');
      if (empty) empty.remove();
      list.prepend(item({ ...n, read_at: null }));
    }
    if (!n.missed) toast(`New notification: ${n.title || n.notification_type}`);
  });
  client.on('event', (e) => {
    if (e.kind !== 'notifications_read' || e.channel !== client.userStream) return;
    if (!e.ids) {
      if (loaded) load(false);
      return;
    }
    for (const id of e.ids) {
      const node = list.querySelector(`[data-id="${id}"]`);
      if (node) markedRead(node);
    }
  });
  return { badge };
}

// --- boot -----------------------------------------------------------------------------------------

async function main() {
  const config = await getConfig();
  if (!config.realm) {
    $('#boot').textContent = 'This api does not serve the analyst realm, which the demo app signs in to.';
    return;
  }
  // Links printed by `make demo` carry an access token: #token=<jwt> signs this tab in.
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get('token')) {
    Session.fromToken(config.api_prefix, hash.get('token'));
    history.replaceState(null, '', location.pathname + location.search);
  }
  const session = Session.load(config.api_prefix);
  if (session && (session.data.refresh || session.remaining() > 0)) await start(config, session);
  else signIn(config);
}

main().catch((err) => {
  $('#boot').hidden = false;
  $('#boot').textContent = `Something went wrong: ${err.message}`;
  console.error(err);
});
