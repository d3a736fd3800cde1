// A client for the Connect protocol with its JSON encoding: unary calls and
// server streams, over fetch or anything shaped like it (a part's WebRTC
// session, see rtc.js). The page calls the same RPCs as the CLI, so there
// is no second API for the browser; requests and responses are the
// protobuf JSON mapping of the messages in api/proto (lowerCamelCase field
// names, 64-bit integers as strings, enums by name).

/** The Connect error codes, as the JSON protocol spells them. */
export const Code = Object.freeze({
  Canceled: 'canceled',
  Unknown: 'unknown',
  InvalidArgument: 'invalid_argument',
  DeadlineExceeded: 'deadline_exceeded',
  NotFound: 'not_found',
  AlreadyExists: 'already_exists',
  PermissionDenied: 'permission_denied',
  ResourceExhausted: 'resource_exhausted',
  FailedPrecondition: 'failed_precondition',
  Aborted: 'aborted',
  OutOfRange: 'out_of_range',
  Unimplemented: 'unimplemented',
  Internal: 'internal',
  Unavailable: 'unavailable',
  DataLoss: 'data_loss',
  Unauthenticated: 'unauthenticated',
});

const CODES = new Set(Object.values(Code));

/** The largest message this client accepts: the control plane's limit plus room. */
export const MAX_MESSAGE_BYTES = (4 << 20) + (64 << 10);

/**
 * ConnectError is a call's failure. Its message is the server's own
 * message, unchanged (a refusal carries the reason the server gives, to be
 * shown as it is); code is one of Code.
 */
export class ConnectError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{details?: any[], metadata?: Headers, cause?: any}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : {cause: extra.cause});
    this.name = 'ConnectError';
    this.code = CODES.has(code) ? code : Code.Unknown;
    this.details = Array.isArray(extra.details) ? extra.details : [];
    this.metadata = extra.metadata || new Headers();
  }
}

/**
 * codeOfStatus maps an HTTP status without a Connect error body to a code,
 * as the Connect protocol specifies.
 * @param {number} status
 * @returns {string}
 */
export function codeOfStatus(status) {
  switch (status) {
    case 400: return Code.Internal;
    case 401: return Code.Unauthenticated;
    case 403: return Code.PermissionDenied;
    case 404: return Code.Unimplemented;
    case 429: case 502: case 503: case 504: return Code.Unavailable;
    default: return Code.Unknown;
  }
}

/**
 * errorOf reads a Connect error from its JSON form ({code, message,
 * details}); anything else becomes fallback's code with a message saying so.
 * @param {any} obj
 * @param {string} fallback
 * @param {Headers} [metadata]
 * @returns {ConnectError}
 */
export function errorOf(obj, fallback, metadata) {
  if (obj && typeof obj === 'object' && typeof obj.code === 'string' && CODES.has(obj.code)) {
    const msg = typeof obj.message === 'string' ? obj.message : obj.code.replaceAll('_', ' ');
    return new ConnectError(obj.code, msg, {details: obj.details, metadata});
  }
  return new ConnectError(fallback, `the server answered without a Connect error (${fallback.replaceAll('_', ' ')})`, {metadata});
}

/**
 * createClient returns a Connect client.
 * @param {object} [opts]
 * @param {string} [opts.baseUrl] prefix of every procedure path ('' for this origin's root)
 * @param {typeof fetch} [opts.fetch] the transport; the page's fetch by default
 * @param {Record<string, string>} [opts.headers] headers sent with every call
 * @param {number} [opts.timeoutMs] default deadline of every call; 0 means none
 */
export function createClient(opts = {}) {
  const baseUrl = (opts.baseUrl || '').replace(/\/+$/, '');
  const doFetch = opts.fetch || ((input, init) => globalThis.fetch(input, init));
  const common = opts.headers || {};

  function prepare(service, method, callOpts, contentType) {
    if (!/^[A-Za-z0-9_.]+$/.test(service) || !/^[A-Za-z0-9_]+$/.test(method)) {
      throw new ConnectError(Code.InvalidArgument, `bad procedure name ${service}/${method}`);
    }
    const headers = new Headers(common);
    for (const [k, v] of Object.entries(callOpts.headers || {})) headers.set(k, v);
    headers.set('Content-Type', contentType);
    headers.set('Connect-Protocol-Version', '1');
    const timeoutMs = callOpts.timeoutMs ?? opts.timeoutMs ?? 0;
    const signals = [];
    if (callOpts.signal) signals.push(callOpts.signal);
    if (timeoutMs > 0) {
      headers.set('Connect-Timeout-Ms', String(Math.ceil(timeoutMs)));
      signals.push(AbortSignal.timeout(timeoutMs));
    }
    const signal = signals.length ? AbortSignal.any(signals) : undefined;
    return {url: `${baseUrl}/${service}/${method}`, headers, signal};
  }

  async function send(url, init) {
    try {
      return await doFetch(url, {...init, method: 'POST', credentials: 'same-origin', redirect: 'error', cache: 'no-store'});
    } catch (err) {
      throw failure(err, init.signal);
    }
  }

  return {
    /**
     * unary calls service/method with request (a plain object) and returns
     * the response message; it throws ConnectError.
     * @param {string} service such as 'outpost.control.v1.ControlService'
     * @param {string} method such as 'Status'
     * @param {object} [request]
     * @param {{signal?: AbortSignal, timeoutMs?: number, headers?: Record<string,string>}} [callOpts]
     * @returns {Promise<any>}
     */
    async unary(service, method, request = {}, callOpts = {}) {
      const {url, headers, signal} = prepare(service, method, callOpts, 'application/json');
      const resp = await send(url, {headers, signal, body: JSON.stringify(request)});
      let text;
      try {
        text = await readText(resp, signal);
      } catch (err) {
        throw failure(err, signal);
      }
      const type = (resp.headers.get('Content-Type') || '').split(';')[0].trim();
      if (resp.status !== 200) {
        let body = null;
        if (type === 'application/json') {
          try { body = JSON.parse(text); } catch { body = null; }
        }
        throw errorOf(body, codeOfStatus(resp.status), resp.headers);
      }
      if (type !== 'application/json') {
        throw new ConnectError(Code.Internal, `the server answered with ${type || 'no content type'}, not JSON`);
      }
      try {
        return JSON.parse(text);
      } catch (err) {
        throw new ConnectError(Code.Internal, 'the server answered with JSON that does not parse', {cause: err});
      }
    },

    /**
     * stream calls a server-streaming service/method and yields each
     * response message as it arrives; it throws ConnectError, including the
     * error the server ends the stream with. Breaking out of the loop, or
     * aborting callOpts.signal, cancels the call.
     * @param {string} service
     * @param {string} method
     * @param {object} [request]
     * @param {{signal?: AbortSignal, timeoutMs?: number, headers?: Record<string,string>}} [callOpts]
     * @returns {AsyncGenerator<any>}
     */
    async *stream(service, method, request = {}, callOpts = {}) {
      const own = new AbortController();
      const merged = {...callOpts, signal: callOpts.signal ? AbortSignal.any([callOpts.signal, own.signal]) : own.signal};
      const {url, headers, signal} = prepare(service, method, merged, 'application/connect+json');
      const resp = await send(url, {headers, signal, body: envelope(0, new TextEncoder().encode(JSON.stringify(request)))});
      const type = (resp.headers.get('Content-Type') || '').split(';')[0].trim();
      if (resp.status !== 200 || type !== 'application/connect+json') {
        let body = null;
        try { body = JSON.parse(await readText(resp, signal)); } catch { body = null; }
        throw errorOf(body, resp.status === 200 ? Code.Internal : codeOfStatus(resp.status), resp.headers);
      }
      const reader = resp.body.getReader();
      const env = new EnvelopeReader(reader);
      try {
        for (;;) {
          let e;
          try {
            e = await env.next();
          } catch (err) {
            throw failure(err, signal);
          }
          if (e === null) {
            throw new ConnectError(Code.Internal, 'the stream ended without its end message');
          }
          if (e.flags & 0x01) {
            throw new ConnectError(Code.Internal, 'the server sent a compressed message this client did not ask for');
          }
          const text = new TextDecoder().decode(e.data);
          let obj;
          try {
            obj = JSON.parse(text);
          } catch (err) {
            throw new ConnectError(Code.Internal, 'the server sent a message that does not parse', {cause: err});
          }
          if (e.flags & 0x02) {
            if (obj && obj.error) throw errorOf(obj.error, Code.Unknown, resp.headers);
            return;
          }
          yield obj;
        }
      } finally {
        own.abort();
        reader.cancel().catch(() => {});
      }
    },
  };
}

/**
 * failure turns a transport error into a ConnectError: an aborted call is
 * canceled (or deadline_exceeded for a timeout), anything else unavailable.
 * @param {any} err
 * @param {AbortSignal} [signal]
 */
function failure(err, signal) {
  if (err instanceof ConnectError) return err;
  if (signal && signal.aborted) {
    const r = signal.reason;
    if (r && r.name === 'TimeoutError') return new ConnectError(Code.DeadlineExceeded, 'the call took longer than its deadline', {cause: err});
    return new ConnectError(Code.Canceled, 'the call was cancelled', {cause: err});
  }
  return new ConnectError(Code.Unavailable, `cannot reach the server: ${err && err.message ? err.message : err}`, {cause: err});
}

/** readText reads a response body up to MAX_MESSAGE_BYTES. */
async function readText(resp, signal) {
  if (!resp.body) return '';
  const reader = resp.body.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    if (signal && signal.aborted) {
      reader.cancel().catch(() => {});
      throw signal.reason || new DOMException('aborted', 'AbortError');
    }
    const {done, value} = await reader.read();
    if (done) break;
    n += value.byteLength;
    if (n > MAX_MESSAGE_BYTES) {
      reader.cancel().catch(() => {});
      throw new ConnectError(Code.ResourceExhausted, `the response is over ${MAX_MESSAGE_BYTES} bytes`);
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(concat(chunks, n));
}

/**
 * envelope frames one message of a Connect stream: flags, big-endian
 * length, data.
 * @param {number} flags
 * @param {Uint8Array} data
 * @returns {Uint8Array}
 */
export function envelope(flags, data) {
  const out = new Uint8Array(5 + data.byteLength);
  out[0] = flags;
  new DataView(out.buffer).setUint32(1, data.byteLength);
  out.set(data, 5);
  return out;
}

/**
 * EnvelopeReader reads Connect envelopes from a byte stream reader, however
 * the bytes are chunked.
 */
export class EnvelopeReader {
  /** @param {ReadableStreamDefaultReader<Uint8Array>} reader */
  constructor(reader) {
    this.reader = reader;
    this.buf = new Uint8Array(0);
  }

  /** fill reads until n bytes are buffered; false at a clean end before any. */
  async fill(n) {
    while (this.buf.byteLength < n) {
      const {done, value} = await this.reader.read();
      if (done) {
        if (this.buf.byteLength === 0) return false;
        throw new ConnectError(Code.DataLoss, 'the stream ended inside a message');
      }
      this.buf = concat([this.buf, value], this.buf.byteLength + value.byteLength);
    }
    return true;
  }

  /** next returns {flags, data}, or null when the stream ended between messages. */
  async next() {
    if (!(await this.fill(5))) return null;
    const flags = this.buf[0];
    const len = new DataView(this.buf.buffer, this.buf.byteOffset, 5).getUint32(1);
    if (flags & ~0x03) throw new ConnectError(Code.Internal, `an envelope has unknown flags ${flags}`);
    if (len > MAX_MESSAGE_BYTES) throw new ConnectError(Code.ResourceExhausted, `a message of ${len} bytes is over the ${MAX_MESSAGE_BYTES}-byte limit`);
    if (!(await this.fill(5 + len))) throw new ConnectError(Code.DataLoss, 'the stream ended inside a message');
    const data = this.buf.slice(5, 5 + len);
    this.buf = this.buf.slice(5 + len);
    return {flags, data};
  }
}

/** concat joins byte arrays of total length n. */
export function concat(chunks, n) {
  const out = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}
