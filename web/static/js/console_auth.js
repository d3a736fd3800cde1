// The console's sign-in, with no cloud: `outpost robot console` (which
// holds the technician's API key or session) makes a key pair for this page
// and a delegation signed by that credential, for this part alone and a
// shift at most, and opens the page with both in the URL's fragment
// (#d=<delegation>&k=<private key>), which the browser never sends to any
// server. The page imports the key into WebCrypto as non-extractable, keeps
// it and the delegation in IndexedDB (so the console's pages, which are
// separate loads, stay signed in), drops the fragment from the address, and
// signs the part's usual proofs with it (docs/CREDENTIALS.md, "The part's
// console"). Nothing the page holds works at the cloud or on another part.

import {Code, ConnectError} from './connect.js';

const DB = 'outpost-console';
const STORE = 'session';
const CURRENT = 'current';

/** The header a part sends its nonce in. */
export const NONCE_HEADER = 'Outpost-Nonce';

/** How long the page reuses a nonce before asking for a fresh one: under the part's five minutes. */
const NONCE_REUSE_MS = 4 * 60 * 1000;

/**
 * b64url encodes bytes as unpadded base64url.
 * @param {Uint8Array} bytes
 */
export function b64url(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replaceAll('+', '-').replaceAll('/', '_').replace(/=+$/, '');
}

/**
 * fromB64url decodes unpadded base64url; it throws on anything else.
 * @param {string} s
 */
export function fromB64url(s) {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error('not base64url');
  const bin = atob(s.replaceAll('-', '+').replaceAll('_', '/') + '='.repeat((4 - (s.length % 4)) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/**
 * claimsOf reads a JWT's claims without checking it: the page shows who and
 * until when; the part checks everything.
 * @param {string} jwt
 */
export function claimsOf(jwt) {
  const parts = String(jwt).split('.');
  if (parts.length !== 3) throw new Error('the delegation is not a JWT');
  return JSON.parse(new TextDecoder().decode(fromB64url(parts[1])));
}

/**
 * readFragment reads "#d=<delegation>&k=<private key>"; null when the
 * fragment holds neither.
 * @param {string} hash location.hash
 * @returns {{delegation: string, key: string} | null}
 */
export function readFragment(hash) {
  const p = new URLSearchParams(String(hash).replace(/^#/, ''));
  const delegation = p.get('d');
  const key = p.get('k');
  if (!delegation && !key) return null;
  if (!delegation || !key) throw new Error('the console link is cut short: it needs both d= and k=; run `outpost robot console` again');
  return {delegation, key};
}

/**
 * sessionOf checks a delegation's shape and imports its key: the result
 * holds a CryptoKey the page can sign with and never read.
 * @param {{delegation: string, key: string}} frag
 * @param {string} fingerprint this part's, from the page's config
 * @returns {Promise<{delegation: string, key: CryptoKey, x: string, until: number, subject: string}>}
 */
export async function sessionOf(frag, fingerprint) {
  let c;
  try {
    c = claimsOf(frag.delegation);
  } catch {
    throw new Error('the console link holds no delegation: run `outpost robot console` again');
  }
  const aud = Array.isArray(c.aud) ? c.aud : [c.aud];
  if (aud.length !== 1 || aud[0] !== `tls/${fingerprint}`) {
    throw new Error(`this console link was made for another part (${aud.join(', ')}), not this one (tls/${fingerprint})`);
  }
  const x = c.cnf && c.cnf.jwk && c.cnf.jwk.x;
  if (typeof x !== 'string' || fromB64url(x).length !== 32 || fromB64url(frag.key).length !== 32) {
    throw new Error('the console link’s key is not an Ed25519 key');
  }
  const key = await crypto.subtle.importKey('jwk', {kty: 'OKP', crv: 'Ed25519', d: frag.key, x, ext: false}, {name: 'Ed25519'}, false, ['sign']);
  return {delegation: frag.delegation, key, x, until: Number(c.exp) * 1000, subject: c.sub || ''};
}

/**
 * openDB opens the console's database. Every connection lets go at once
 * when another page needs the database changed (onversionchange), so no
 * page, not even one frozen in the back-forward cache, holds up another's
 * open. A blocked open is left to wait for that, not failed: failing it
 * would leave the request running and its connection, once open, never
 * closed.
 */
function openDB() {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => {
      const db = req.result;
      db.onversionchange = () => db.close();
      resolve(db);
    };
    req.onerror = () => reject(req.error || new Error('the console could not open its storage: reload the page'));
  });
}

/**
 * withStore runs one request in a transaction and settles when the
 * transaction does: complete, error or abort. A transaction can end by
 * abort alone (the page is left or frozen while it runs, the browser
 * closes the connection, storage is full), which fires no error event; a
 * promise waiting only for complete or error would then never settle, and
 * the page would hang reading its sign-in.
 */
async function withStore(mode, fn) {
  const db = await openDB();
  try {
    return await new Promise((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = fn(tx.objectStore(STORE));
      tx.oncomplete = () => resolve(req.result);
      tx.onabort = () => reject(tx.error || new Error('the console’s storage was interrupted: reload the page'));
      // Commit now rather than when the task ends: the sooner it is
      // durable, the less a page left at once can lose.
      if (typeof tx.commit === 'function') tx.commit();
    });
  } finally {
    db.close();
  }
}

/** saveSession keeps the session for the console's other pages. */
export function saveSession(s) {
  return withStore('readwrite', (st) => st.put(s, CURRENT));
}

/** loadSession returns the kept session, or null. */
export async function loadSession() {
  return (await withStore('readonly', (st) => st.get(CURRENT))) || null;
}

/** forgetSession drops the kept session: the key is gone for good. */
export function forgetSession() {
  return withStore('readwrite', (st) => st.delete(CURRENT));
}

async function sha256(text) {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text)));
}

/**
 * proofFor signs a proof (typ dpop+jwt) with the session's key for aud,
 * carrying the part's nonce and the delegation's hash.
 */
export async function proofFor(session, aud, nonce, nowMs) {
  const enc = (o) => b64url(new TextEncoder().encode(JSON.stringify(o)));
  const jti = b64url(crypto.getRandomValues(new Uint8Array(16)));
  const iat = Math.floor(nowMs / 1000);
  const header = {alg: 'EdDSA', typ: 'dpop+jwt', jwk: {kty: 'OKP', crv: 'Ed25519', x: session.x}};
  const claims = {jti, aud, iat, exp: iat + 300, nonce, ath: b64url(await sha256(session.delegation))};
  const input = `${enc(header)}.${enc(claims)}`;
  const sig = new Uint8Array(await crypto.subtle.sign({name: 'Ed25519'}, session.key, new TextEncoder().encode(input)));
  return `${input}.${b64url(sig)}`;
}

/**
 * delegatedFetch returns a fetch for connect.js's createClient that signs
 * every call with the session: "Authorization: Delegation <delegation>"
 * and a proof for aud with the part's current nonce. It reuses one proof
 * while the nonce holds (the part then finds it in its cache), asks the
 * part's public Health call for a nonce before the first call and when it
 * grows old, and tries a call once more when the part answers with a fresh
 * nonce.
 * @param {object} session from sessionOf or loadSession
 * @param {{aud: string, healthUrl: string, fetch?: typeof fetch, now?: () => number}} opts
 */
export function delegatedFetch(session, opts) {
  const base = opts.fetch || ((u, i) => globalThis.fetch(u, i));
  const now = opts.now || (() => Date.now());
  let nonce = '';
  let nonceAt = 0;
  let proof = '';
  let proofNonce = null;

  async function freshNonce() {
    const resp = await base(opts.healthUrl, {method: 'POST', headers: {'Content-Type': 'application/json', 'Connect-Protocol-Version': '1'},
      body: '{}', cache: 'no-store', credentials: 'omit', redirect: 'error'});
    const n = resp.headers.get(NONCE_HEADER);
    if (!n) throw new ConnectError(Code.Unavailable, 'the part sent no nonce: is this an Outpost part?');
    nonce = n;
    nonceAt = now();
  }

  return async (url, init) => {
    if (now() >= session.until) {
      throw new ConnectError(Code.Unauthenticated, `your console sign-in ended at ${new Date(session.until).toISOString()}: run \`outpost robot console\` again`);
    }
    if (!nonce || now() - nonceAt > NONCE_REUSE_MS) await freshNonce();
    for (let attempt = 0; ; attempt++) {
      if (proofNonce !== nonce) {
        proof = await proofFor(session, opts.aud, nonce, now());
        proofNonce = nonce;
      }
      const headers = new Headers(init.headers);
      headers.set('Authorization', `Delegation ${session.delegation}`);
      headers.set('DPoP', proof);
      const resp = await base(url, {...init, headers, credentials: 'omit'});
      const n = resp.headers.get(NONCE_HEADER);
      if (resp.status === 401 && n && n !== nonce && attempt === 0) {
        // The challenge: the part wants a proof with this nonce.
        nonce = n;
        nonceAt = now();
        continue;
      }
      return resp;
    }
  };
}
