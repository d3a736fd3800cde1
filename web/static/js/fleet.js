// The fleet app's Fleet page: every machine the signed-in user may see, as
// a tree of organizations and locations beside a searchable, paged list
// with each machine's state as its parts last reported it. The list is
// the server's (ListFleet pages, searches and filters it), so a fleet of
// ten thousand machines costs the page one page of them. The page asks
// the same RPCs the CLI does and shows what the server answers; which
// machines appear is the server's decision.

import {h, replace} from './dom.js';

const ORG = 'outpost.fleet.v1.OrgService';
const LOC = 'outpost.fleet.v1.LocationService';
const MACHINE = 'outpost.fleet.v1.MachineService';

/** Rows per page; the server pages (ListFleet). */
export const PAGE_SIZE = 25;

/** The performance mark set when the first list is rendered. */
export const RENDERED = 'fleet-list-rendered';

/** How long typing in the search box settles before the server is asked. */
const SEARCH_DELAY_MS = 200;

/**
 * buildTree turns organizations and their locations into the tree the
 * page shows: one node per organization, its locations nested under it by
 * parent. Each node is {kind, id, name, children}, children by name.
 * @param {{id: string, name: string}[]} orgs
 * @param {{id: string, orgId: string, parentLocationId?: string, name: string}[][]} locations per org, in orgs' order
 */
export function buildTree(orgs, locations) {
  const byName = (a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id);
  return orgs.map((o, i) => {
    const nodes = new Map();
    for (const l of locations[i] || []) nodes.set(l.id, {kind: 'location', id: l.id, name: l.name, parent: l.parentLocationId || '', children: []});
    const root = {kind: 'org', id: o.id, name: o.name, children: []};
    for (const n of nodes.values()) (nodes.get(n.parent) || root).children.push(n);
    const sort = (n) => { n.children.sort(byName); n.children.forEach(sort); };
    sort(root);
    return root;
  });
}

/**
 * row turns a ListFleet machine into what a row shows.
 * @param {any} fm a FleetMachine in Connect JSON
 */
export function row(fm) {
  const m = fm.machine || {};
  const parts = fm.parts || [];
  const seen = parts.filter((p) => p.lastSeen);
  const versions = [...new Set(seen.map((p) => p.version).filter(Boolean))];
  const configs = seen.map((p) => {
    const running = Number(p.runningConfigVersion || 0);
    const issued = Number(p.issuedConfigVersion || 0);
    return running === issued ? `v${running}` : `v${running} of v${issued}`;
  });
  const backlog = parts.reduce((n, p) => n + Number(p.backlogRecords || 0), 0);
  const failing = parts.flatMap((p, i) => (p.failing || []).map((f) => (i > 0 ? `${p.name}:${f}` : f)));
  return {
    id: m.id, name: m.name, location: fm.locationPath || '',
    state: fm.online ? 'online' : fm.lastSeen ? 'offline' : 'never seen',
    lastSeen: fm.lastSeen || '',
    version: versions.join(', ') || '—',
    config: configs.length ? configs.join(', ') : '—',
    backlog: seen.length ? `${backlog} record${backlog === 1 ? '' : 's'}` : '—',
    failing,
  };
}

/** The list's columns: [heading, field of a row]. */
const COLUMNS = [
  ['Machine', 'name'], ['Location', 'location'], ['Status', 'state'], ['Daemon', 'version'],
  ['Config (running of issued)', 'config'], ['Backlog', 'backlog'], ['Failing', 'failing'],
];

/**
 * treeView makes the location tree: an ARIA tree of organizations and
 * their locations, collapsible, used with the keyboard as the WAI-ARIA
 * tree pattern says (Up and Down move, Right opens or goes to the first
 * child, Left closes or goes to the parent, Home and End, Enter or Space
 * choose). One item is in the tab order at a time. onSelect gets the
 * chosen node.
 * @param {ReturnType<typeof buildTree>} roots
 * @param {{kind: string, id: string}} selected
 * @param {(node: any) => void} onSelect
 */
export function treeView(roots, selected, onSelect) {
  const tree = h('ul', {id: 'fleet-tree', role: 'tree', 'aria-label': 'Organizations and locations'});
  const items = [];
  function item(node, level, parent) {
    const hasKids = node.children.length > 0;
    const key = `${node.kind}/${node.id}`;
    const toggle = h('span', {class: 'tree-toggle', 'aria-hidden': 'true'}, hasKids ? '▸' : '');
    const li = h('li', {role: 'treeitem', 'data-node': key, 'aria-level': level, 'aria-selected': 'false', tabindex: '-1',
      'aria-expanded': hasKids ? String(level === 1) : null},
    h('span', {class: 'tree-label'}, toggle, node.name));
    li._node = node;
    li._parent = parent;
    items.push(li);
    if (hasKids) {
      const group = h('ul', {role: 'group'}, node.children.map((c) => item(c, level + 1, li)));
      li.append(group);
      toggle.addEventListener('click', (ev) => { ev.stopPropagation(); setOpen(li, li.getAttribute('aria-expanded') !== 'true'); });
    }
    li.addEventListener('click', (ev) => { ev.stopPropagation(); choose(li); });
    return li;
  }
  function setOpen(li, open) {
    if (!li.hasAttribute('aria-expanded')) return;
    li.setAttribute('aria-expanded', String(open));
    const t = li.querySelector('.tree-toggle');
    if (t) t.textContent = open ? '▾' : '▸';
  }
  /** visible lists the items not inside a closed one, in order. */
  const visible = () => items.filter((li) => {
    for (let p = li._parent; p; p = p._parent) if (p.getAttribute('aria-expanded') !== 'true') return false;
    return true;
  });
  function focus(li) {
    for (const x of items) x.tabIndex = -1;
    li.tabIndex = 0;
    li.focus();
  }
  function choose(li) {
    for (const x of items) x.setAttribute('aria-selected', String(x === li));
    focus(li);
    onSelect(li._node);
  }
  replace(tree, roots.map((r) => item(r, 1, null)));
  for (const li of items) setOpen(li, li.getAttribute('aria-expanded') === 'true');
  const start = items.find((li) => li.dataset.node === `${selected.kind}/${selected.id}`) || items[0];
  if (start) {
    start.setAttribute('aria-selected', 'true');
    start.tabIndex = 0;
    for (let p = start._parent; p; p = p._parent) setOpen(p, true);
  }
  tree.addEventListener('keydown', (ev) => {
    const li = ev.target.closest('[role=treeitem]');
    if (!li) return;
    const vis = visible();
    const i = vis.indexOf(li);
    const open = li.getAttribute('aria-expanded');
    switch (ev.key) {
      case 'ArrowDown': if (i < vis.length - 1) focus(vis[i + 1]); break;
      case 'ArrowUp': if (i > 0) focus(vis[i - 1]); break;
      case 'Home': focus(vis[0]); break;
      case 'End': focus(vis[vis.length - 1]); break;
      case 'ArrowRight':
        if (open === 'false') setOpen(li, true);
        else if (open === 'true') focus(vis[i + 1]);
        break;
      case 'ArrowLeft':
        if (open === 'true') setOpen(li, false);
        else if (li._parent) focus(li._parent);
        break;
      case 'Enter': case ' ': choose(li); break;
      default: return;
    }
    ev.preventDefault();
  });
  return tree;
}

/**
 * fleetPage returns the Fleet page and starts loading it: the location
 * tree beside a list the server pages, searches and filters (ListFleet),
 * for the chosen organization or location.
 * @param {{client: ReturnType<import('./connect.js').createClient>, syncSeconds?: number}} opts
 * @returns {HTMLElement}
 */
export function fleetPage(opts) {
  const client = opts.client;
  const status = h('p', {id: 'fleet-status', class: 'status', role: 'status', 'aria-live': 'polite'}, 'Loading machines…');
  const search = h('input', {id: 'fleet-search', type: 'search', name: 'q', autocomplete: 'off', spellcheck: 'false',
    'aria-describedby': 'fleet-status', 'aria-controls': 'fleet-list'});
  const filters = [['offline', 'Offline'], ['failing', 'Failing']].map(([f, label]) =>
    h('label', {class: 'check'}, h('input', {type: 'checkbox', id: `fleet-${f}`, 'data-filter': f}), ` ${label}`));
  const tbody = h('tbody');
  const table = h('table', {id: 'fleet-list', class: 'list'},
    h('caption', {class: 'visually-hidden'}, 'Machines'),
    h('thead', null, h('tr', null, COLUMNS.map(([label]) => h('th', {scope: 'col'}, label)))),
    tbody);
  const prev = h('button', {type: 'button', id: 'fleet-prev', class: 'secondary', disabled: true}, 'Previous');
  const next = h('button', {type: 'button', id: 'fleet-next', class: 'secondary', disabled: true}, 'Next');
  const pageInfo = h('span', {id: 'fleet-page'});
  const treeBox = h('nav', {class: 'fleet-tree', 'aria-label': 'Locations'}, h('p', {class: 'status'}, 'Loading locations…'));
  const section = h('section', {id: 'fleet', 'aria-labelledby': 'fleet-title'},
    h('h1', {id: 'fleet-title'}, 'Fleet'),
    h('div', {class: 'fleet-layout'},
      treeBox,
      h('div', {class: 'fleet-main'},
        h('form', {role: 'search', class: 'field search', onsubmit: (ev) => ev.preventDefault()},
          h('label', {for: 'fleet-search'}, 'Search machines by name'), search),
        h('div', {class: 'filters actions', role: 'group', 'aria-label': 'Show only'}, filters),
        status,
        h('div', {class: 'table-wrap'}, table),
        h('nav', {class: 'pager actions', 'aria-label': 'Pages of machines'}, prev, pageInfo, next))));

  /** scope is what the list covers: an organization or a location. */
  let scope = null;
  let scopeName = '';
  /** tokens[i] is the page token of page i (page 0's is ''). */
  let tokens = [''];
  let page = 0;
  let generation = 0;

  function request() {
    const r = {pageSize: PAGE_SIZE, pageToken: tokens[page]};
    if (scope.kind === 'org') r.orgId = scope.id; else r.locationId = scope.id;
    const q = search.value.trim();
    if (q) r.search = q;
    for (const box of section.querySelectorAll('[data-filter]')) if (box.checked) r[box.dataset.filter] = true;
    return r;
  }

  async function load() {
    const gen = ++generation;
    let res;
    try {
      res = await client.unary(MACHINE, 'ListFleet', request());
    } catch (err) {
      if (gen !== generation) return;
      status.className = 'status error';
      replace(status, err && err.message ? err.message : String(err));
      return;
    }
    if (gen !== generation) return;
    status.className = 'status';
    const rows = (res.machines || []).map(row);
    if (res.nextPageToken) tokens[page + 1] = res.nextPageToken; else tokens.length = page + 1;
    prev.disabled = page === 0;
    next.disabled = !res.nextPageToken;
    replace(pageInfo, `Page ${page + 1}${res.nextPageToken ? '' : ` of ${page + 1}`}`);
    const q = search.value.trim();
    const filtered = Boolean(q || section.querySelector('[data-filter]:checked'));
    const total = Number(res.total || 0);
    const first = page * PAGE_SIZE + 1;
    const n = page * PAGE_SIZE + rows.length;
    const all = `${total} machine${total === 1 ? '' : 's'}`;
    const where = scopeName ? ` in ${scopeName}` : '';
    let text;
    if (total === 0) text = `No machines you may see${where}.`;
    else if (!filtered && !res.nextPageToken && page === 0) text = `${all}${where}.`;
    else if (!filtered) text = `${first}–${n} of ${total} machines${where}.`;
    else if (!res.nextPageToken && page === 0) text = `${n} of ${total} machines ${q ? `match “${q}”` : 'shown'}${where}.`;
    else text = `${first}–${n} of the machines ${q ? `matching “${q}”` : 'shown'}, of ${total}${where}.`;
    replace(status, text);
    const cells = new Map();
    replace(tbody, rows.map((m) => {
      const tds = COLUMNS.map(([label, f]) => {
        const td = h('td', {'data-label': label, 'data-field': f}, f === 'name' ? h('a', {href: `${opts.basePath || '/'}machines/${encodeURIComponent(m.id)}`}, m.name || m.id) : f === 'location' ? (m[f] || '—') : '…');
        cells.set(`${m.id}/${f}`, td);
        return td;
      });
      return h('tr', {'data-machine': m.id}, tds);
    }));
    for (const s of rows) {
      replace(cells.get(`${s.id}/state`), h('span', {class: `badge ${s.state === 'online' ? 'ok' : 'off'}`, title: s.lastSeen ? `last seen ${s.lastSeen}` : null}, s.state));
      replace(cells.get(`${s.id}/version`), s.version);
      replace(cells.get(`${s.id}/config`), s.config);
      replace(cells.get(`${s.id}/backlog`), s.backlog);
      replace(cells.get(`${s.id}/failing`), s.failing.length ? h('span', {class: 'error'}, s.failing.join(', ')) : 'none');
    }
    // When the first list is on screen, for the benchmark that times
    // navigation to it (web/bench_test.go).
    if (performance.getEntriesByName(RENDERED, 'mark').length === 0) performance.mark(RENDERED);
  }

  function restart() {
    tokens = [''];
    page = 0;
    return load();
  }

  let typing = 0;
  search.addEventListener('input', () => {
    clearTimeout(typing);
    typing = setTimeout(restart, SEARCH_DELAY_MS);
  });
  for (const box of section.querySelectorAll('[data-filter]')) box.addEventListener('change', restart);
  prev.addEventListener('click', () => { page--; load(); });
  next.addEventListener('click', () => { page++; load(); });

  client.unary(ORG, 'ListOrgs', {}).then(async (res) => {
    const orgs = res.orgs || [];
    if (orgs.length === 0) {
      replace(status, 'No machines you may see.');
      replace(treeBox);
      return;
    }
    scope = {kind: 'org', id: orgs[0].id};
    scopeName = orgs.length > 1 ? orgs[0].name : '';
    // The list first; the tree follows, so it neither delays the list's
    // call at the server nor its rendering in the page.
    await restart();
    const locations = await Promise.all(orgs.map((o) => client.unary(LOC, 'ListLocations', {orgId: o.id, includeShared: true})
      .then((l) => l.locations || [], () => [])));
    replace(treeBox, treeView(buildTree(orgs, locations), scope, (node) => {
      scope = {kind: node.kind, id: node.id};
      scopeName = node.name;
      restart();
    }));
  }).catch((err) => {
    status.className = 'status error';
    replace(status, err && err.message ? err.message : String(err));
  });
  return section;
}
