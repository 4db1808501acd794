// The API key the dashboard sends (kept in this browser's localStorage), and who to tell
// when the server answers 401: the app then asks for a key once, with a small form.

const STORAGE_KEY = "optimlab.apiKey";

/** Where the key is kept: localStorage in the browser, anything alike in a test. */
export interface KeyStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

function browserStore(): KeyStore | null {
  try {
    return typeof localStorage === "undefined" ? null : localStorage;
  } catch {
    return null; // storage disabled: the key lives as long as the page
  }
}

let store: KeyStore | null = browserStore();
let memory: string | null = null;
const listeners = new Set<() => void>();

/** For tests: keep the key in `s` instead of localStorage. */
export function setKeyStore(s: KeyStore | null): void {
  store = s;
  memory = null;
}

export function apiKey(): string | null {
  return (store ? store.getItem(STORAGE_KEY) : memory) || null;
}

export function saveKey(key: string): void {
  const k = key.trim();
  if (!k) return;
  if (store) store.setItem(STORAGE_KEY, k);
  else memory = k;
}

export function forgetKey(): void {
  if (store) store.removeItem(STORAGE_KEY);
  memory = null;
}

/** The Authorization header for every request and stream (none without a key). */
export function authHeaders(): Record<string, string> {
  const key = apiKey();
  return key ? { authorization: `Bearer ${key}` } : {};
}

/** Called on every 401: the listeners (the app's key form) ask for a key. */
export function keyRefused(): void {
  for (const listener of listeners) listener();
}

export function onKeyRefused(listener: () => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
