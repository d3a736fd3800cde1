// A line diff by longest common subsequence, for the HISTORY tab's view of
// two config revisions. Configs are small (the validator bounds them), so
// the quadratic table is cheap; the common head and tail are trimmed first,
// which leaves only the changed middle in the table for a typical edit.

/** The largest table diffLines builds; past it the middle is shown as replaced. */
export const MAX_CELLS = 4_000_000;

/**
 * diffLines compares two texts line by line. Each returned line is
 * {op, text, a, b}: op ' ' (in both), '-' (only in a) or '+' (only in b);
 * a and b are 1-based line numbers in each text (0 where absent).
 * @param {string} a
 * @param {string} b
 * @returns {{op: ' '|'-'|'+', text: string, a: number, b: number}[]}
 */
export function diffLines(a, b) {
  const x = splitLines(a);
  const y = splitLines(b);
  let head = 0;
  while (head < x.length && head < y.length && x[head] === y[head]) head++;
  let tail = 0;
  while (tail < x.length - head && tail < y.length - head && x[x.length - 1 - tail] === y[y.length - 1 - tail]) tail++;
  const out = [];
  for (let i = 0; i < head; i++) out.push({op: ' ', text: x[i], a: i + 1, b: i + 1});
  const xs = x.slice(head, x.length - tail);
  const ys = y.slice(head, y.length - tail);
  for (const d of middle(xs, ys)) {
    out.push({op: d.op, text: d.text, a: d.a ? d.a + head : 0, b: d.b ? d.b + head : 0});
  }
  for (let i = tail; i > 0; i--) {
    out.push({op: ' ', text: x[x.length - i], a: x.length - i + 1, b: y.length - i + 1});
  }
  return out;
}

/** splitLines splits on \n (and \r\n); an empty text has no lines. */
export function splitLines(s) {
  if (s === '') return [];
  const lines = s.split(/\r?\n/);
  if (lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** middle diffs what is left after trimming, by an LCS table. */
function middle(x, y) {
  const n = x.length;
  const m = y.length;
  if ((n + 1) * (m + 1) > MAX_CELLS) {
    return [...x.map((t, i) => ({op: '-', text: t, a: i + 1, b: 0})), ...y.map((t, j) => ({op: '+', text: t, a: 0, b: j + 1}))];
  }
  // lcs[i][j]: the LCS length of x[i:] and y[j:], row-major.
  const w = m + 1;
  const lcs = new Uint32Array((n + 1) * w);
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i * w + j] = x[i] === y[j] ? lcs[(i + 1) * w + j + 1] + 1 : Math.max(lcs[(i + 1) * w + j], lcs[i * w + j + 1]);
    }
  }
  const out = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) {
      out.push({op: ' ', text: x[i], a: i + 1, b: j + 1});
      i++;
      j++;
    } else if (lcs[(i + 1) * w + j] >= lcs[i * w + j + 1]) {
      out.push({op: '-', text: x[i], a: i + 1, b: 0});
      i++;
    } else {
      out.push({op: '+', text: y[j], a: 0, b: j + 1});
      j++;
    }
  }
  for (; i < n; i++) out.push({op: '-', text: x[i], a: i + 1, b: 0});
  for (; j < m; j++) out.push({op: '+', text: y[j], a: 0, b: j + 1});
  return out;
}

/**
 * jsonPathLine returns the 1-based line of text (JSON) where the value at
 * path starts, or 0 when text does not parse that far or has no such value.
 * path is the validator's field path, such as "components[1].depends_on[0]":
 * snake_case names match their lowerCamelCase JSON names too.
 * @param {string} text
 * @param {string} path
 * @returns {number}
 */
export function jsonPathLine(text, path) {
  const want = [];
  for (const m of path.matchAll(/([^.[\]]+)|\[(\d+)\]/g)) want.push(m[2] !== undefined ? Number(m[2]) : m[1]);
  if (want.length === 0) return 0;
  const camel = (s) => s.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase());
  let pos = 0;
  const ws = () => { while (pos < text.length && /\s/.test(text[pos])) pos++; };
  const str = () => {
    // At a '"': returns the string's value and moves past it.
    let out = '';
    pos++;
    while (pos < text.length && text[pos] !== '"') {
      if (text[pos] === '\\') {
        out += text[pos + 1] || '';
        pos += 2;
      } else {
        out += text[pos++];
      }
    }
    pos++;
    return out;
  };
  // skip moves past one value; false on bad input.
  const skip = () => {
    ws();
    const c = text[pos];
    if (c === '"') { str(); return true; }
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      pos++;
      ws();
      if (text[pos] === close) { pos++; return true; }
      for (;;) {
        ws();
        if (c === '{') {
          if (text[pos] !== '"') return false;
          str();
          ws();
          if (text[pos++] !== ':') return false;
        }
        if (!skip()) return false;
        ws();
        if (text[pos] === ',') { pos++; continue; }
        if (text[pos] === close) { pos++; return true; }
        return false;
      }
    }
    const m = /^[-+0-9.eEa-z]+/.exec(text.slice(pos, pos + 64));
    if (!m) return false;
    pos += m[0].length;
    return true;
  };
  // find moves to the value at want[k:] inside the value at pos.
  const find = (k) => {
    ws();
    if (k === want.length) return pos < text.length;
    const seg = want[k];
    const c = text[pos];
    if (typeof seg === 'number') {
      if (c !== '[') return false;
      pos++;
      for (let i = 0; ; i++) {
        ws();
        if (text[pos] === ']') return false;
        if (i === seg) return find(k + 1);
        if (!skip()) return false;
        ws();
        if (text[pos] !== ',') return false;
        pos++;
      }
    }
    if (c !== '{') return false;
    pos++;
    for (;;) {
      ws();
      if (text[pos] !== '"') return false;
      const key = str();
      ws();
      if (text[pos++] !== ':') return false;
      if (key === seg || key === camel(seg)) return find(k + 1);
      if (!skip()) return false;
      ws();
      if (text[pos] !== ',') return false;
      pos++;
    }
  };
  if (!find(0)) return 0;
  return text.slice(0, pos).split('\n').length;
}
