// A WebRTC session with a part's control plane, as package controlclient
// makes one in Go: an offer with every ICE candidate gathered (no trickle)
// goes out through a signaling function, and a data channel labelled
// "outpost-control" then carries HTTP exchanges framed as controlwire
// frames them. The session's fetch gives connect.js a transport, so the
// page's calls to the part are the same Connect calls as over TLS, decided
// by the same authorizer on the part.

import {ConnectError, Code} from './connect.js';
import {
  FLAG_END, FLAG_ERROR, FLAG_FIRST, FLAG_LAST, MAX_PAYLOAD,
  Joiner, decodeFrame, decodeResponseHead, encodeFrame, encodeRequestHead, splitMessage,
} from './wire.js';

/** The control data channel's label. */
export const CHANNEL_LABEL = 'outpost-control';

/** The origin of URLs for a session's fetch; it is never dialled. */
export const BASE_URL = 'http://webrtc';

// Send-side flow control, as controlwire.Conn: above SEND_HIGH bytes queued
// a sender waits until the channel drains to SEND_LOW.
const SEND_HIGH = 1 << 20;
const SEND_LOW = 256 << 10;

// Statuses whose Response cannot have a body.
const NULL_BODY = new Set([101, 103, 204, 205, 304]);

/**
 * relaySignaling signals through the fleet cloud's relay
 * (outpost.fleet.v1.RelayService.RelayOffer): the cloud requires
 * machine.control on the part and vouches for the caller; the part decides
 * again with its own grants.
 * @param {{unary: Function}} client a connect.js client of the cloud
 * @param {string} partId
 * @returns {(sdp: string) => Promise<string>}
 */
export function relaySignaling(client, partId) {
  return async (sdp) => (await client.unary('outpost.fleet.v1.RelayService', 'RelayOffer', {partId, sdp})).sdp;
}

/**
 * partSignaling signals to the part itself (outpost.control.v1.
 * SignalingService.Offer), as the console served by the part does.
 * @param {{unary: Function}} client a connect.js client of the part
 * @returns {(sdp: string) => Promise<string>}
 */
export function partSignaling(client) {
  return async (sdp) => (await client.unary('outpost.control.v1.SignalingService', 'Offer', {sdp})).sdp;
}

/**
 * loopbackOnly is a candidate filter for dialControl that keeps only
 * loopback candidates: for a session with a part on the same machine (and
 * tests), whose ICE is confined to loopback too.
 * @param {string} address
 */
export function loopbackOnly(address) {
  return address === '127.0.0.1' || address === '::1';
}

/**
 * filterCandidates drops the SDP's candidates whose address keep refuses.
 * @param {string} sdp
 * @param {(address: string) => boolean} keep
 * @returns {string}
 */
export function filterCandidates(sdp, keep) {
  const lines = sdp.split('\r\n').filter((line) => {
    if (!line.startsWith('a=candidate:')) return true;
    const address = line.split(' ')[4];
    return address !== undefined && keep(address);
  });
  return lines.join('\r\n');
}

/**
 * dialControl opens a session with a part.
 * @param {object} opts
 * @param {(sdp: string) => Promise<string>} opts.signaling takes the offer, returns the answer
 * @param {string[]} [opts.iceServers] STUN/TURN URLs; none are needed on a LAN
 * @param {(address: string) => boolean} [opts.candidates] keeps only the
 *   local candidates it accepts in the offer (loopbackOnly, for instance)
 * @param {number} [opts.timeoutMs] bound on opening the session (30 s)
 * @param {AbortSignal} [opts.abort] cancels opening
 * @returns {Promise<ControlSession>}
 */
export async function dialControl(opts) {
  if (typeof opts.signaling !== 'function') throw new TypeError('dialControl: opts.signaling must be a function');
  const timeout = AbortSignal.timeout(opts.timeoutMs ?? 30000);
  const abort = opts.abort ? AbortSignal.any([opts.abort, timeout]) : timeout;
  const ice = opts.iceServers && opts.iceServers.length ? [{urls: opts.iceServers}] : [];
  const pc = new RTCPeerConnection({iceServers: ice});
  const dc = pc.createDataChannel(CHANNEL_LABEL, {ordered: true});
  const session = new ControlSession(pc, dc);
  const step = async (what, p) => {
    try {
      return await untilAborted(p, abort);
    } catch (err) {
      session.close();
      if (err instanceof ConnectError) throw err;
      if (abort.aborted) {
        const code = timeout.aborted ? Code.DeadlineExceeded : Code.Canceled;
        throw new ConnectError(code, `${what}: ${timeout.aborted ? 'took too long' : 'cancelled'}`);
      }
      throw new ConnectError(Code.Unavailable, `${what}: ${err && err.message ? err.message : err}`, {cause: err});
    }
  };
  const opened = new Promise((resolve, reject) => {
    dc.addEventListener('open', resolve, {once: true});
    dc.addEventListener('close', () => reject(new Error('the data channel closed')), {once: true});
  });
  opened.catch(() => {});
  await step('create the offer', pc.setLocalDescription());
  await step('gather ICE candidates', gathered(pc));
  let sdp = pc.localDescription.sdp;
  if (opts.candidates) sdp = filterCandidates(sdp, opts.candidates);
  const answer = await step('signal', opts.signaling(sdp));
  if (typeof answer !== 'string' || answer === '') {
    session.close();
    throw new ConnectError(Code.Internal, 'signal: the answer is empty');
  }
  await step('set the answer', pc.setRemoteDescription({type: 'answer', sdp: answer}));
  await step('open the data channel', opened);
  return session;
}

/** gathered resolves when ICE gathering is complete. */
function gathered(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const check = () => {
      if (pc.iceGatheringState === 'complete') {
        pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      }
    };
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** untilAborted settles as p, or rejects when signal aborts first. */
function untilAborted(p, signal) {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, {once: true});
    Promise.resolve(p).then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** bodyBytes turns a fetch body into bytes. */
async function bodyBytes(body) {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (typeof body === 'string') return new TextEncoder().encode(body);
  if (body instanceof Uint8Array) return body;
  if (body instanceof ArrayBuffer) return new Uint8Array(body);
  if (ArrayBuffer.isView(body)) return new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
  if (body instanceof Blob) return new Uint8Array(await body.arrayBuffer());
  throw new TypeError('a control session sends string, Blob or byte bodies');
}

/**
 * ControlSession is an open session: fetch sends a request over the data
 * channel and resolves to its Response once the part's head arrives; the
 * body streams as the part flushes it.
 */
export class ControlSession {
  constructor(pc, dc) {
    this.pc = pc;
    this.dc = dc;
    this.next = 1; // the client's streams are odd
    this.streams = new Map();
    this.error = null;
    this.lowWaiters = [];
    this.closed = new Promise((resolve) => { this.onClosed = resolve; });
    dc.binaryType = 'arraybuffer';
    dc.bufferedAmountLowThreshold = SEND_LOW;
    dc.addEventListener('bufferedamountlow', () => {
      const ws = this.lowWaiters;
      this.lowWaiters = [];
      for (const w of ws) w();
    });
    dc.addEventListener('message', (ev) => this.onFrame(ev.data));
    dc.addEventListener('close', () => this.shutdown(new Error('the data channel closed')));
    pc.addEventListener('connectionstatechange', () => {
      if (['failed', 'closed', 'disconnected'].includes(pc.connectionState)) this.shutdown(new Error(`the connection to the part is ${pc.connectionState}`));
    });
    this.fetch = this.fetch.bind(this);
  }

  /** close ends the session. */
  close() {
    this.shutdown(new Error('the session was closed'));
  }

  shutdown(err) {
    if (this.error) return;
    this.error = err;
    const streams = [...this.streams.values()];
    this.streams.clear();
    for (const st of streams) st.fail(err);
    for (const w of this.lowWaiters) w();
    this.lowWaiters = [];
    try { this.dc.close(); } catch { /* already closed */ }
    try { this.pc.close(); } catch { /* already closed */ }
    this.onClosed(err);
  }

  async sendFrame(frame) {
    while (this.dc.bufferedAmount > SEND_HIGH && !this.error) {
      await new Promise((resolve) => this.lowWaiters.push(resolve));
    }
    if (this.error) throw this.error;
    this.dc.send(frame);
  }

  async sendMessage(stream, msg, end) {
    for (const f of splitMessage(stream, msg, end)) await this.sendFrame(f);
  }

  sendError(stream, text) {
    const p = new TextEncoder().encode(text).subarray(0, MAX_PAYLOAD);
    this.sendFrame(encodeFrame(stream, FLAG_FIRST | FLAG_LAST | FLAG_END | FLAG_ERROR, p)).catch(() => {});
  }

  /**
   * fetch sends a request to the part's handler. input is a path or a URL
   * under BASE_URL; init is fetch's (method, headers, body, signal).
   * @param {string|URL} input
   * @param {RequestInit} [init]
   * @returns {Promise<Response>}
   */
  async fetch(input, init = {}) {
    if (this.error) throw new TypeError(`the session has ended: ${this.error.message}`);
    const url = new URL(String(input), BASE_URL);
    const method = (init.method || 'GET').toUpperCase();
    const headers = [...new Headers(init.headers || {})];
    const body = await bodyBytes(init.body);
    const id = this.next;
    this.next += 2;
    const st = new Stream(this, id);
    this.streams.set(id, st);
    const signal = init.signal;
    if (signal) {
      if (signal.aborted) {
        this.streams.delete(id);
        throw signal.reason;
      }
      signal.addEventListener('abort', () => st.cancel(signal.reason), {once: true});
    }
    try {
      await this.sendMessage(id, encodeRequestHead({method, path: url.pathname + url.search, headers}), false);
      await this.sendMessage(id, body, true);
    } catch (err) {
      st.cancel(err);
    }
    return st.response;
  }

  onFrame(data) {
    let f;
    try {
      f = decodeFrame(new Uint8Array(data));
    } catch (err) {
      this.shutdown(new Error(`the part sent a bad frame: ${err.message}`));
      return;
    }
    const st = this.streams.get(f.stream);
    if (!st) return; // a stream this side gave up
    if (f.flags & FLAG_ERROR) {
      this.streams.delete(f.stream);
      st.fail(new Error(`the part aborted the call: ${new TextDecoder().decode(f.payload)}`));
      return;
    }
    try {
      const msg = st.joiner.add(f);
      if (msg) st.message(msg);
    } catch (err) {
      this.streams.delete(f.stream);
      this.sendError(f.stream, err.message);
      st.fail(err);
      return;
    }
    if (f.flags & FLAG_END) {
      this.streams.delete(f.stream);
      st.end();
    }
  }
}

/** Stream is one call on a session. */
class Stream {
  constructor(session, id) {
    this.session = session;
    this.id = id;
    this.joiner = new Joiner();
    this.controller = null;
    this.settled = false;
    this.response = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.response.catch(() => {});
  }

  message(msg) {
    if (this.settled) {
      if (this.controller) this.controller.enqueue(msg);
      return;
    }
    const head = decodeResponseHead(msg);
    if (head.status < 200 || head.status > 599) throw new Error(`bad head: status ${head.status}`);
    const headers = new Headers();
    for (const [k, v] of head.headers) {
      try { headers.append(k, v); } catch { /* a name or value fetch refuses is dropped */ }
    }
    let body = null;
    if (!NULL_BODY.has(head.status)) {
      body = new ReadableStream({
        start: (c) => { this.controller = c; },
        cancel: () => {
          if (this.session.streams.get(this.id) === this) {
            this.session.streams.delete(this.id);
            this.session.sendError(this.id, 'cancelled');
          }
        },
      });
    }
    this.settled = true;
    this.resolve(new Response(body, {status: head.status, headers}));
  }

  end() {
    if (!this.settled) {
      this.fail(new Error('the part ended the call without an answer'));
      return;
    }
    if (this.controller) {
      try { this.controller.close(); } catch { /* cancelled by the reader */ }
    }
  }

  fail(err) {
    if (!this.settled) {
      this.settled = true;
      this.reject(err);
    } else if (this.controller) {
      try { this.controller.error(err); } catch { /* already closed */ }
    }
  }

  cancel(reason) {
    if (this.session.streams.get(this.id) === this) {
      this.session.streams.delete(this.id);
      this.session.sendError(this.id, 'cancelled');
    }
    this.fail(reason instanceof Error ? reason : new DOMException('aborted', 'AbortError'));
  }
}
