// The signed-in staff member: a JWT from /api/auth/login or /signup, kept in
// localStorage so a reload stays signed in, dropped when it expires.

const KEY = "syntera:dashboard:session";
const listeners = new Set();

function read() {
  try {
    const saved = JSON.parse(localStorage.getItem(KEY));
    if (saved && saved.expires_at > Date.now()) return saved;
  } catch (_) { /* a broken entry is no session */ }
  return null;
}

let current = read();

export const session = {
  get token() { return current?.access_token || null; },
  get user() { return current?.user || null; },
  get company() { return current?.company || null; },
  /** Owners and admins may manage keys, erase contacts and read the audit log. */
  get isAdmin() { return ["owner", "admin"].includes(current?.user?.role); },

  start(answer) {
    current = { ...answer, expires_at: Date.now() + answer.expires_in * 1000 };
    localStorage.setItem(KEY, JSON.stringify(current));
    listeners.forEach((fn) => fn(current));
  },

  end() {
    current = null;
    localStorage.removeItem(KEY);
    listeners.forEach((fn) => fn(null));
  },

  onChange(fn) { listeners.add(fn); },
};
