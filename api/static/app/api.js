// REST calls to this api (same origin) and the signed-in session. The session is kept in
// sessionStorage: each tab (each browser window) signs in on its own, so two windows can be
// two users chatting with each other.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }
}

/** A JSON request; resolves with the decoded body (null for 204), rejects with an ApiError. */
export async function request(method, url, { body, token } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(res.status, err.code, err.message);
  }
  return data;
}

export const getConfig = () => request('GET', '/web/config');

/** Claims of a JWT (no verification: only to read `sub`, `iat` and `exp`). */
export function claims(token) {
  const part = token.split('.')[1] || '';
  const json = atob(part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '='));
  return JSON.parse(json);
}

const KEY = 'switchboard.session';

export class Session {
  /** `data`: {access, refresh (null for a bare access token), userId}. */
  constructor(prefix, data) {
    this.prefix = prefix;
    this.data = data;
    this._refreshing = null;
  }

  static load(prefix) {
    try {
      const data = JSON.parse(sessionStorage.getItem(KEY) || 'null');
      return data && data.access ? new Session(prefix, data) : null;
    } catch (_) {
      return null;
    }
  }

  /** From the answer of login, signup or refresh. */
  static fromLogin(prefix, answer) {
    const s = new Session(prefix, { access: answer.access_token, refresh: answer.refresh_token, userId: answer.user.id });
    s.save();
    return s;
  }

  /** From an access token alone (`make demo` prints links with one): no refresh. */
  static fromToken(prefix, token) {
    const s = new Session(prefix, { access: token, refresh: null, userId: claims(token).sub });
    s.save();
    return s;
  }

  get userId() { return this.data.userId; }

  save() { sessionStorage.setItem(KEY, JSON.stringify(this.data)); }

  clear() { sessionStorage.removeItem(KEY); }

  /** Seconds until the access token expires. */
  remaining() { return claims(this.data.access).exp - Date.now() / 1000; }

  /** The access token; a new one first when a quarter of its lifetime (or a minute) is left.
   * This is the gateway client's token provider, so the socket refreshes with it too. */
  async token() {
    const c = claims(this.data.access);
    const left = c.exp - Date.now() / 1000;
    if (this.data.refresh && left < Math.max(60, (c.exp - c.iat) / 4)) await this.refresh();
    return this.data.access;
  }

  /** Trade the refresh token for a new pair (one at a time: each refresh token works once). */
  refresh() {
    if (!this._refreshing) {
      this._refreshing = request('POST', `${this.prefix}/auth/refresh`, { body: { refresh_token: this.data.refresh } })
        .then((answer) => {
          this.data = { access: answer.access_token, refresh: answer.refresh_token, userId: answer.user.id };
          this.save();
        })
        .finally(() => { this._refreshing = null; });
    }
    return this._refreshing;
  }

  /** A call to the realm's REST routes as this user (`path` after /v1/<realm>). */
  async call(method, path, body) {
    return request(method, `${this.prefix}${path}`, { body, token: await this.token() });
  }

  async logout() {
    if (this.data.refresh) {
      await request('POST', `${this.prefix}/auth/logout`, { body: { refresh_token: this.data.refresh } }).catch(() => {});
    }
    this.clear();
  }
}

/** The sign-in flows of the realm (e-mail code, password, signup with a code). */
export const auth = {
  sendCode: (prefix, email, purpose) => request('POST', `${prefix}/auth/otp`, { body: { purpose, email } }),
  loginWithCode: (prefix, email, otp) => request('POST', `${prefix}/auth/login`, { body: { email, otp } }),
  loginWithPassword: (prefix, email, password) => request('POST', `${prefix}/auth/login`, { body: { email, password } }),
  signup: (prefix, email, password, otp, userType) =>
    request('POST', `${prefix}/auth/signup`, { body: { email, password, otp, user_type: userType } }),
  /** Dev mode only: the newest code the api sent to `to` (from the dev mail catcher). */
  async devCode(to) {
    const mail = await request('GET', `/dev/mail/messages?to=${encodeURIComponent(to)}&limit=1`);
    return mail.length ? mail[0] : null;
  },
};
