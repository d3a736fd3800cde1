// The LOGS tab: what the machine's parts logged, as the cloud holds it
// (DataService.ListLogs, machine.view), by level, time and part, merged
// across parts and streams by time, and followed live by polling.

import {h, replace} from './dom.js';

const DATA = 'outpost.fleet.v1.DataService';

/** How often following polls the cloud. Parts hand over their logs at each sync (every 15 s by default). */
export const FOLLOW_MS = 5000;

/** The most entries the tab keeps; older ones are dropped from the top. */
export const MAX_ENTRIES = 1000;

/** Pages of one load, at most: a bound on one poll's work. */
const MAX_PAGES = 10;

/** The time windows the tab offers: [label, milliseconds back]. */
const SINCE = [['the last 15 minutes', 15 * 60e3], ['the last hour', 3600e3], ['the last 24 hours', 86400e3], ['the last 7 days', 7 * 86400e3]];

/** keyOf names an entry uniquely: its part, stream and sequence. */
export function keyOf(e) {
  return `${e.partId}|${e.stream}|${e.seq}`;
}

/**
 * mergeByTime adds entries to held (deduplicated by keyOf) and returns the
 * union sorted by time, then part, stream and sequence, keeping the newest
 * max.
 */
export function mergeByTime(held, entries, max = MAX_ENTRIES) {
  const by = new Map(held.map((e) => [keyOf(e), e]));
  for (const e of entries) by.set(keyOf(e), e);
  const out = [...by.values()].sort((a, b) => (a.time || '').localeCompare(b.time || '') ||
    a.partId.localeCompare(b.partId) || a.stream.localeCompare(b.stream) || Number(a.seq) - Number(b.seq));
  return out.length > max ? out.slice(out.length - max) : out;
}

/** The tab, a RobotTab as robot.js describes it. */
export const logsTab = {
  id: 'logs',
  label: 'LOGS',
  action: 'machine.view',
  render(ctx) {
    const parts = ctx.machine.parts || [];
    const level = h('select', {id: 'logs-level', name: 'level'}, ['debug', 'info', 'warn', 'error'].map((l) => h('option', {value: l}, l)));
    level.value = 'info';
    const part = h('select', {id: 'logs-part', name: 'part'}, h('option', {value: ''}, 'every part'),
      parts.map((p) => h('option', {value: p.id}, p.name || p.id)));
    const since = h('select', {id: 'logs-since', name: 'since'}, SINCE.map(([l, ms]) => h('option', {value: String(ms)}, l)));
    since.value = String(3600e3);
    const follow = h('input', {type: 'checkbox', id: 'logs-follow', name: 'follow', checked: true});
    const status = h('p', {id: 'logs-status', class: 'status', role: 'status', 'aria-live': 'polite'}, 'Loading the logs…');
    const tbody = h('tbody');
    const table = h('table', {id: 'logs-list', class: 'list logs'},
      h('caption', {class: 'visually-hidden'}, 'Log entries, oldest first'),
      h('thead', null, h('tr', null, ['Time', 'Part', 'Level', 'Logger', 'Message'].map((c) => h('th', {scope: 'col'}, c)))),
      tbody);
    const names = new Map(parts.map((p) => [p.id, p.name || p.id]));
    let held = [];
    let gen = 0;
    let newest = '';

    async function fetchFrom(my, from) {
      const got = [];
      let token = '';
      for (let i = 0; i < MAX_PAGES; i++) {
        const resp = await ctx.client.unary(DATA, 'ListLogs', {machineId: ctx.machine.id, partId: part.value, level: level.value,
          from, pageSize: 1000, pageToken: token}, {signal: ctx.signal});
        if (my !== gen) return null;
        got.push(...(resp.entries || []));
        token = resp.nextPageToken || '';
        if (!token) break;
      }
      return got;
    }

    function render() {
      replace(tbody, held.map((e) => h('tr', {class: `lvl-${e.entry?.level || 'info'}`, 'data-key': keyOf(e)},
        h('td', {'data-label': 'Time'}, h('time', {datetime: e.time}, e.time || '')),
        h('td', {'data-label': 'Part'}, names.get(e.partId) || e.partId),
        h('td', {'data-label': 'Level'}, e.entry?.level || 'info'),
        h('td', {'data-label': 'Logger'}, e.entry?.logger || ''),
        h('td', {'data-label': 'Message'}, e.entry?.message || '', e.entry?.fieldsJson ? h('code', {class: 'fields'}, ' ', e.entry.fieldsJson) : null))));
      const n = held.length;
      replace(status, `${n} entr${n === 1 ? 'y' : 'ies'}${n >= MAX_ENTRIES ? ' (the newest ' + MAX_ENTRIES + ')' : ''}` +
        (follow.checked ? `; following: new entries are fetched every ${FOLLOW_MS / 1000} s.` : '.'));
    }

    async function poll(my) {
      // Later polls start at the newest entry held (inclusive: entries of
      // the same instant from another part are kept, repeats dropped).
      const from = newest || new Date(Date.now() - Number(since.value)).toISOString();
      const got = await fetchFrom(my, from);
      if (got === null) return;
      held = mergeByTime(held, got);
      if (held.length) newest = held[held.length - 1].time || newest;
      render();
    }

    function restart() {
      const my = ++gen;
      held = [];
      newest = '';
      status.className = 'status';
      status.setAttribute('role', 'status');
      const loop = async () => {
        if (my !== gen || ctx.signal.aborted) return;
        try {
          await poll(my);
        } catch (err) {
          if (my !== gen || ctx.signal.aborted) return;
          status.className = 'status error';
          status.setAttribute('role', 'alert');
          replace(status, err.message);
          return;
        }
        if (follow.checked && my === gen) setTimeout(loop, FOLLOW_MS);
      };
      loop();
    }

    for (const el of [level, part, since]) el.addEventListener('change', restart);
    follow.addEventListener('change', () => (follow.checked ? restart() : render()));
    restart();
    return h('div', {id: 'logs'},
      h('form', {class: 'filters', 'aria-label': 'Which logs', onsubmit: (ev) => ev.preventDefault()},
        h('div', {class: 'field'}, h('label', {for: 'logs-level'}, 'Lowest level'), level),
        parts.length > 1 ? h('div', {class: 'field'}, h('label', {for: 'logs-part'}, 'Part'), part) : null,
        h('div', {class: 'field'}, h('label', {for: 'logs-since'}, 'Since'), since),
        h('div', {class: 'field check'}, follow, h('label', {for: 'logs-follow'}, `Follow (every ${FOLLOW_MS / 1000} s)`))),
      status,
      h('div', {class: 'table-wrap'}, table));
  },
};
