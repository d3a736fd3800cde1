// The control data channel's wire format (package controlwire, documented
// in api/proto/outpost/control/v1/control.proto): frames, and the two
// protobuf messages that open a call and its answer, ChannelRequestHead and
// ChannelResponseHead, with a hand-written encoder and decoder for those
// two alone. Everything else on the channel is Connect's JSON.

/** Frame flags. */
export const FLAG_FIRST = 0x01;
export const FLAG_LAST = 0x02;
export const FLAG_END = 0x04;
export const FLAG_ERROR = 0x08;
const FLAGS_KNOWN = FLAG_FIRST | FLAG_LAST | FLAG_END | FLAG_ERROR;

/** A frame's header: stream (4), flags (1), length (4). */
export const FRAME_HEADER = 9;
/** The largest channel message, which every WebRTC stack accepts. */
export const MAX_FRAME = 16 << 10;
/** A frame's payload limit. */
export const MAX_PAYLOAD = MAX_FRAME - FRAME_HEADER;
/** The largest reassembled message. */
export const MAX_JOINED = (4 << 20) + (64 << 10);

/**
 * encodeFrame makes one frame.
 * @param {number} stream
 * @param {number} flags
 * @param {Uint8Array} payload at most MAX_PAYLOAD bytes
 * @returns {Uint8Array}
 */
export function encodeFrame(stream, flags, payload) {
  if (payload.byteLength > MAX_PAYLOAD) throw new RangeError(`a frame's payload of ${payload.byteLength} bytes is over ${MAX_PAYLOAD}`);
  const out = new Uint8Array(FRAME_HEADER + payload.byteLength);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, stream);
  dv.setUint8(4, flags);
  dv.setUint32(5, payload.byteLength);
  out.set(payload, FRAME_HEADER);
  return out;
}

/**
 * decodeFrame reads one frame, checking it as controlwire.DecodeFrame does;
 * the payload is a view of b.
 * @param {Uint8Array} b
 * @returns {{stream: number, flags: number, payload: Uint8Array}}
 */
export function decodeFrame(b) {
  if (b.byteLength < FRAME_HEADER) throw new Error(`bad frame: ${b.byteLength} bytes is shorter than its header`);
  if (b.byteLength > MAX_FRAME) throw new Error(`bad frame: ${b.byteLength} bytes is over the ${MAX_FRAME}-byte limit`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const stream = dv.getUint32(0);
  const flags = dv.getUint8(4);
  const n = dv.getUint32(5);
  if (n !== b.byteLength - FRAME_HEADER) throw new Error(`bad frame: it says ${n} payload bytes and carries ${b.byteLength - FRAME_HEADER}`);
  if (flags & ~FLAGS_KNOWN) throw new Error(`bad frame: unknown flags ${flags}`);
  if (stream === 0) throw new Error('bad frame: stream 0');
  return {stream, flags, payload: b.subarray(FRAME_HEADER)};
}

/**
 * splitMessage encodes msg as frames (an empty message is one frame); the
 * last carries FLAG_END when end is set.
 * @param {number} stream
 * @param {Uint8Array} msg
 * @param {boolean} end
 * @returns {Uint8Array[]}
 */
export function splitMessage(stream, msg, end) {
  const frames = [];
  let off = 0;
  do {
    const n = Math.min(msg.byteLength - off, MAX_PAYLOAD);
    let flags = off === 0 ? FLAG_FIRST : 0;
    if (off + n === msg.byteLength) flags |= FLAG_LAST | (end ? FLAG_END : 0);
    frames.push(encodeFrame(stream, flags, msg.subarray(off, off + n)));
    off += n;
  } while (off < msg.byteLength);
  return frames;
}

/** Joiner reassembles one stream's messages from frames. */
export class Joiner {
  constructor() {
    this.parts = [];
    this.size = 0;
    this.inside = false;
  }

  /**
   * add takes a frame; it returns the whole message when the frame
   * completed one, else null. It throws on frames out of order.
   * @param {{stream: number, flags: number, payload: Uint8Array}} f
   * @returns {Uint8Array|null}
   */
  add(f) {
    if (f.flags & FLAG_FIRST) {
      if (this.inside) throw new Error(`bad frame: on stream ${f.stream} a message starts before the previous one ended`);
      this.inside = true;
      this.parts = [];
      this.size = 0;
    } else if (!this.inside) {
      throw new Error(`bad frame: on stream ${f.stream} a continuation frame has no message started`);
    }
    if (this.size + f.payload.byteLength > MAX_JOINED) throw new Error(`bad frame: on stream ${f.stream} a message is over ${MAX_JOINED} bytes`);
    this.parts.push(f.payload.slice());
    this.size += f.payload.byteLength;
    if (!(f.flags & FLAG_LAST)) return null;
    this.inside = false;
    const out = new Uint8Array(this.size);
    let off = 0;
    for (const p of this.parts) {
      out.set(p, off);
      off += p.byteLength;
    }
    this.parts = [];
    this.size = 0;
    return out;
  }
}

// --- protobuf, for the two head messages only ---

const utf8 = new TextEncoder();
const utf8Strict = new TextDecoder('utf-8', {fatal: true});

class Writer {
  constructor() {
    this.bytes = [];
  }

  varint(v) {
    while (v > 0x7f) {
      this.bytes.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    this.bytes.push(v);
  }

  bytesField(field, b) {
    this.varint((field << 3) | 2);
    this.varint(b.byteLength);
    for (const x of b) this.bytes.push(x);
  }

  stringField(field, s) {
    if (s !== '') this.bytesField(field, utf8.encode(s));
  }

  finish() {
    return Uint8Array.from(this.bytes);
  }
}

function encodeHeader(name, values) {
  const w = new Writer();
  w.stringField(1, name);
  for (const v of values) w.bytesField(2, utf8.encode(v));
  return w.finish();
}

/**
 * encodeRequestHead encodes a ChannelRequestHead.
 * @param {{method: string, path: string, headers?: Iterable<[string, string]>}} head
 * @returns {Uint8Array}
 */
export function encodeRequestHead(head) {
  const w = new Writer();
  w.stringField(1, head.method);
  w.stringField(2, head.path);
  const byName = new Map();
  for (const [k, v] of head.headers || []) {
    if (!byName.has(k)) byName.set(k, []);
    byName.get(k).push(v);
  }
  for (const [k, vs] of byName) w.bytesField(3, encodeHeader(k, vs));
  return w.finish();
}

/** Reader reads protobuf's wire format, checking every length. */
class Reader {
  constructor(b) {
    this.b = b;
    this.pos = 0;
  }

  done() {
    return this.pos >= this.b.byteLength;
  }

  /** varint returns the value's low 32 bits, unsigned, and whether it was larger. */
  varint() {
    let low = 0;
    let big = false;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.b.byteLength) throw new Error('bad head: a varint runs past the end');
      const x = this.b[this.pos++];
      // The tenth byte holds bit 63 alone: more is past 64 bits.
      if (i === 9 && x > 1) throw new Error('bad head: a varint overflows 64 bits');
      if (i < 4) low += (x & 0x7f) * 2 ** (7 * i);
      else if (i === 4) {
        low += (x & 0x0f) * 2 ** 28;
        if (x & 0x70) big = true;
      } else if (x & 0x7f) big = true;
      if (!(x & 0x80)) return {low, big};
    }
    throw new Error('bad head: a varint is longer than 10 bytes');
  }

  take(n) {
    if (n > this.b.byteLength - this.pos) throw new Error('bad head: a field runs past the end');
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** tag returns [field, wire type]. */
  tag() {
    const {low, big} = this.varint();
    const field = Math.floor(low / 8);
    if (big || field === 0) throw new Error('bad head: a field number out of range');
    return [field, low & 7];
  }

  lengthDelimited() {
    const {low, big} = this.varint();
    if (big) throw new Error('bad head: a length out of range');
    return this.take(low);
  }

  skip(wire) {
    switch (wire) {
      case 0: this.varint(); return;
      case 1: this.take(8); return;
      case 2: this.lengthDelimited(); return;
      case 5: this.take(4); return;
      default: throw new Error(`bad head: wire type ${wire}`);
    }
  }

  string() {
    try {
      return utf8Strict.decode(this.lengthDelimited());
    } catch (err) {
      if (err instanceof TypeError) throw new Error('bad head: a string is not UTF-8');
      throw err;
    }
  }
}

function expect(wire, want, what) {
  if (wire !== want) throw new Error(`bad head: ${what} has wire type ${wire}`);
}

function decodeHeader(b, out) {
  const r = new Reader(b);
  let name = '';
  const values = [];
  while (!r.done()) {
    const [field, wire] = r.tag();
    if (field === 1) {
      expect(wire, 2, 'a header name');
      name = r.string();
    } else if (field === 2) {
      expect(wire, 2, 'a header value');
      values.push(r.string());
    } else {
      r.skip(wire);
    }
  }
  for (const v of values) out.push([name, v]);
}

/**
 * decodeResponseHead decodes a ChannelResponseHead. It throws an Error
 * saying what is wrong for any input that is not one; unknown fields are
 * skipped, as protobuf asks.
 * @param {Uint8Array} b
 * @returns {{status: number, headers: Array<[string, string]>}}
 */
export function decodeResponseHead(b) {
  const r = new Reader(b);
  let status = 0;
  const headers = [];
  while (!r.done()) {
    const [field, wire] = r.tag();
    if (field === 1) {
      expect(wire, 0, 'the status');
      status = r.varint().low | 0;
    } else if (field === 2) {
      expect(wire, 2, 'a header');
      decodeHeader(r.lengthDelimited(), headers);
    } else {
      r.skip(wire);
    }
  }
  return {status, headers};
}

/**
 * decodeRequestHead decodes a ChannelRequestHead (for tests and tools: a
 * client only sends them).
 * @param {Uint8Array} b
 * @returns {{method: string, path: string, headers: Array<[string, string]>}}
 */
export function decodeRequestHead(b) {
  const r = new Reader(b);
  const out = {method: '', path: '', headers: []};
  while (!r.done()) {
    const [field, wire] = r.tag();
    if (field === 1 || field === 2) {
      expect(wire, 2, field === 1 ? 'the method' : 'the path');
      out[field === 1 ? 'method' : 'path'] = r.string();
    } else if (field === 3) {
      expect(wire, 2, 'a header');
      decodeHeader(r.lengthDelimited(), out.headers);
    } else {
      r.skip(wire);
    }
  }
  return out;
}
