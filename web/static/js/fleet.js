// The fleet app's Fleet page: every machine the signed-in user may see, as a
// searchable, paged list with each one's state as its parts last reported
// it. The page asks the same RPCs the CLI does and shows what the server
// answers; which machines appear is the server's decision (its list calls
// return only what the caller may see).

import {Code} from './connect.js';
import {h, replace} from './dom.js';

const AUTH = 'outpost.fleet.v1.AuthService';
const ORG = 'outpost.fleet.v1.OrgService';
const LOC = 'outpost.fleet.v1.LocationService';
const MACHINE = 'outpost.fleet.v1.MachineService';

/** Rows per page. */
export const PAGE_SIZE = 25;

/** How many calls the page has in flight at once. */
const PARALLEL = 6;

/**
 * pool runs fn over items, at most n at a time, and returns the results in
 * order.
 * @template T, R
 * @param {T[]} items
 * @param {number} n
 * @param {(item: T) => Promise<R>} fn
 * @returns {Promise<R[]>}
 */
async function pool(items, n, fn) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  }
  await Promise.all(Array.from({length: Math.min(n, items.length)}, worker));
  return out;
}

/**
 * loadMachines lists the machines the caller may see: those of every
 * location it may list in its organizations, and those it holds a role on
 * directly. Each is {id, name, locationId, location}.
 * @param {ReturnType<import('./connect.js').createClient>} client
 * @returns {Promise<{id: string, name: string, locationId: string, location: string}[]>}
 */
export async function loadMachines(client) {
  const [who, orgs] = await Promise.all([
    client.unary(AUTH, 'WhoAmI', {}),
    client.unary(ORG, 'ListOrgs', {}),
  ]);
  const locations = new Map();
  const lists = await pool(orgs.orgs || [], PARALLEL, (o) => client.unary(LOC, 'ListLocations', {orgId: o.id}));
  lists.forEach((l, i) => {
    for (const loc of l.locations || []) locations.set(loc.id, {name: loc.name, org: orgs.orgs[i].name});
  });
  const machines = new Map();
  const add = (m) => {
    const loc = locations.get(m.locationId);
    machines.set(m.id, {id: m.id, name: m.name, locationId: m.locationId, location: loc ? loc.name : ''});
  };
  const perLocation = await pool([...locations.keys()], PARALLEL, (id) => client.unary(MACHINE, 'ListMachines', {locationId: id}));
  for (const l of perLocation) for (const m of l.machines || []) add(m);
  // A role on one machine reaches it without its location.
  const direct = (who.grants || []).map((g) => g.scope || '').filter((s) => s.startsWith('machine/')).map((s) => s.slice(8)).filter((id) => !machines.has(id));
  const got = await pool(direct, PARALLEL, async (id) => {
    try {
      return (await client.unary(MACHINE, 'GetMachine', {machineId: id})).machine;
    } catch (err) {
      if (err.code === Code.NotFound || err.code === Code.PermissionDenied) return null;
      throw err;
    }
  });
  for (const m of got) if (m) add(m);
  return [...machines.values()].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
}

/**
 * matches reports whether a machine matches a search: every word of it is
 * in the machine's name, location or id, ignoring case.
 */
export function matches(m, query) {
  const hay = `${m.name} ${m.location} ${m.id}`.toLowerCase();
  return query.toLowerCase().split(/\s+/).filter(Boolean).every((w) => hay.includes(w));
}

/**
 * summarize turns GetMachineStatus's answer into what a row shows.
 * @param {any} st the response
 * @param {number} now milliseconds since the epoch
 * @param {number} syncSeconds how often parts sync
 */
export function summarize(st, now, syncSeconds) {
  const parts = st.parts || [];
  // Online: seen within three sync intervals (a missed cycle and jitter
  // are not an outage).
  const window = 3 * (syncSeconds || 15) * 1000;
  const seen = st.lastSeen ? Date.parse(st.lastSeen) : NaN;
  let state = 'never seen';
  if (!Number.isNaN(seen)) state = now - seen <= window ? 'online' : 'offline';
  const versions = new Set();
  const configs = [];
  let backlog = 0;
  const failing = [];
  for (const p of parts) {
    const s = p.status;
    if (!s) continue;
    if (s.version) versions.add(s.version);
    const running = Number(s.configVersion || 0);
    const issued = Number(p.issuedConfigVersion || 0);
    configs.push(running === issued ? `v${running}` : `v${running} of v${issued}`);
    for (const b of s.backlog || []) backlog += Number(b.records || 0);
    for (const r of s.resources || []) if (r.state === 'failed') failing.push(r.name);
  }
  return {
    state,
    lastSeen: Number.isNaN(seen) ? '' : new Date(seen).toISOString(),
    version: [...versions].join(', ') || '—',
    config: configs.length ? configs.join(', ') : '—',
    backlog: parts.some((p) => p.status) ? `${backlog} record${backlog === 1 ? '' : 's'}` : '—',
    failing,
  };
}

/** The list's columns: [heading, field of a row]. */
const COLUMNS = [
  ['Machine', 'name'], ['Location', 'location'], ['Status', 'state'], ['Daemon', 'version'],
  ['Config (running of issued)', 'config'], ['Backlog', 'backlog'], ['Failing', 'failing'],
];

/**
 * fleetPage returns the Fleet page and starts loading it.
 * @param {{client: ReturnType<import('./connect.js').createClient>, syncSeconds?: number, now?: () => number}} opts
 * @returns {HTMLElement}
 */
export function fleetPage(opts) {
  const now = opts.now || (() => Date.now());
  const status = h('p', {id: 'fleet-status', class: 'status', role: 'status', 'aria-live': 'polite'}, 'Loading machines…');
  const search = h('input', {id: 'fleet-search', type: 'search', name: 'q', autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'fleet-status', 'aria-controls': 'fleet-list'});
  const tbody = h('tbody');
  const table = h('table', {id: 'fleet-list', class: 'list'},
    h('caption', {class: 'visually-hidden'}, 'Machines'),
    h('thead', null, h('tr', null, COLUMNS.map(([label]) => h('th', {scope: 'col'}, label)))),
    tbody);
  const prev = h('button', {type: 'button', id: 'fleet-prev', class: 'secondary', disabled: true}, 'Previous');
  const next = h('button', {type: 'button', id: 'fleet-next', class: 'secondary', disabled: true}, 'Next');
  const pageInfo = h('span', {id: 'fleet-page'});
  const section = h('section', {id: 'fleet', 'aria-labelledby': 'fleet-title'},
    h('h1', {id: 'fleet-title'}, 'Fleet'),
    h('form', {role: 'search', class: 'field search', onsubmit: (ev) => ev.preventDefault()},
      h('label', {for: 'fleet-search'}, 'Search machines by name, location or ID'), search),
    status,
    h('div', {class: 'table-wrap'}, table),
    h('nav', {class: 'pager actions', 'aria-label': 'Pages of machines'}, prev, pageInfo, next));

  let all = [];
  let shown = [];
  let page = 0;
  let generation = 0;

  async function render() {
    const gen = ++generation;
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    page = Math.min(page, pages - 1);
    const rows = shown.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    replace(pageInfo, `Page ${page + 1} of ${pages}`);
    const q = search.value.trim();
    replace(status, all.length === 0 ? 'No machines you may see.' :
      q ? `${shown.length} of ${all.length} machines match “${q}”.` : `${all.length} machine${all.length === 1 ? '' : 's'}.`);
    const cells = new Map();
    replace(tbody, rows.map((m) => {
      const tds = COLUMNS.map(([label, f]) => {
        const td = h('td', {'data-label': label, 'data-field': f}, f === 'name' ? h('a', {href: `${opts.basePath || '/'}machines/${encodeURIComponent(m.id)}`}, m.name || m.id) : f === 'location' ? (m[f] || '—') : '…');
        cells.set(`${m.id}/${f}`, td);
        return td;
      });
      return h('tr', {'data-machine': m.id}, tds);
    }));
    // Each row's status, for this page only: one call per machine shown.
    await pool(rows, PARALLEL, async (m) => {
      let s;
      try {
        s = summarize(await opts.client.unary(MACHINE, 'GetMachineStatus', {machineId: m.id}), now(), opts.syncSeconds);
      } catch (err) {
        if (gen !== generation) return;
        replace(cells.get(`${m.id}/state`), h('span', {class: 'error'}, err.message));
        return;
      }
      if (gen !== generation) return;
      const state = cells.get(`${m.id}/state`);
      replace(state, h('span', {class: `badge ${s.state === 'online' ? 'ok' : 'off'}`, title: s.lastSeen ? `last seen ${s.lastSeen}` : null}, s.state));
      replace(cells.get(`${m.id}/version`), s.version);
      replace(cells.get(`${m.id}/config`), s.config);
      replace(cells.get(`${m.id}/backlog`), s.backlog);
      replace(cells.get(`${m.id}/failing`), s.failing.length ? h('span', {class: 'error'}, s.failing.join(', ')) : 'none');
    });
  }

  function filter() {
    const q = search.value.trim();
    shown = q ? all.filter((m) => matches(m, q)) : all;
    page = 0;
    render();
  }

  search.addEventListener('input', filter);
  prev.addEventListener('click', () => { page--; render(); });
  next.addEventListener('click', () => { page++; render(); });

  loadMachines(opts.client).then((ms) => {
    all = ms;
    filter();
  }, (err) => {
    status.className = 'status error';
    replace(status, err && err.message ? err.message : String(err));
  });
  return section;
}
