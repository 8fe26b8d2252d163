// Bytes, hex and the two primitives the explorer needs from WebCrypto: SHA-256 and Ed25519.
// Nothing here talks to the server; verify.js builds the ledger's checks on top of it.

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** "0a1b…" → Uint8Array; throws on odd length or a non-hex character. */
export function fromHex(text) {
  if (typeof text !== 'string' || !HEX.test(text)) throw new Error('not hex');
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
  return out;
}

export function toHex(bytes) {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export function equal(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Where `needle` first occurs inside `hay`, or -1. */
export function indexOf(hay, needle) {
  if (needle.length === 0) return 0;
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

export const utf8 = (text) => new TextEncoder().encode(text);

/** Byte order of two Uint8Arrays (how the state tree sorts keys: by their UTF-8 bytes). */
export function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

export async function sha256(...parts) {
  const data = parts.length === 1 ? parts[0] : concat(...parts);
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data));
}

/** Thrown when this browser's WebCrypto has no Ed25519 (Chromium < 137, older Safari...). */
export class Ed25519Unsupported extends Error {}

const keyCache = new Map();

/** Pure Ed25519 (RFC 8032) verification of `signature` over `message` by a raw 32-byte key. */
export async function ed25519Verify(publicKey, message, signature) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const id = toHex(publicKey);
  let key = keyCache.get(id);
  if (!key) {
    try {
      key = await crypto.subtle.importKey('raw', publicKey, { name: 'Ed25519' }, false, ['verify']);
    } catch (e) {
      // A malformed key is a DataError; anything else means the algorithm is missing.
      if (e && e.name === 'DataError') return false;
      throw new Ed25519Unsupported(String(e && e.message || e));
    }
    keyCache.set(id, key);
  }
  return crypto.subtle.verify({ name: 'Ed25519' }, key, signature, message);
}
