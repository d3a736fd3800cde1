// An organization's locations as a tree: create (at the top or under a
// parent), move, share with another organization and stop sharing, delete.
// Each button appears once CheckAccess says yes (convenience); every call
// is decided by the server, and its refusal is shown as it is.

import {h, replace} from './dom.js';
import {SVC, confirmButton, field, run, select, statusLine, when} from './ui.js';

/**
 * tree orders locations as nested lists, parents before children; a
 * location whose parent the caller cannot see is a root.
 * @param {any[]} locs
 * @returns {{loc: any, children: any[]}[]}
 */
export function tree(locs) {
  const nodes = new Map(locs.map((l) => [l.id, {loc: l, children: []}]));
  const roots = [];
  for (const n of nodes.values()) {
    const parent = n.loc.parentLocationId && nodes.get(n.loc.parentLocationId);
    (parent ? parent.children : roots).push(n);
  }
  const byName = (a, b) => a.loc.name.localeCompare(b.loc.name) || a.loc.id.localeCompare(b.loc.id);
  const sort = (ns) => { ns.sort(byName); ns.forEach((n) => sort(n.children)); };
  sort(roots);
  return roots;
}

/** @param {any} ctx the org page's context */
export function locationsPage(ctx) {
  const {client, orgId, can} = ctx;
  const status = statusLine('locations-status');
  const list = h('div', {id: 'locations-tree'});
  let locs = [];

  const name = h('input', {type: 'text', required: true, autocomplete: 'off', maxlength: '100'});
  const parent = select([['', 'Top level of the organization']]);
  const create = h('button', {type: 'submit', id: 'location-create'}, 'Create location');
  const form = when(can('location.create', `org/${orgId}`), h('form', {class: 'card', id: 'location-form', 'aria-labelledby': 'location-form-title'},
    h('h2', {id: 'location-form-title'}, 'New location'),
    field('location-name', 'Name', name),
    field('location-parent', 'Inside', parent),
    h('div', {class: 'actions'}, create)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await run(create, status, () => client.unary(SVC.location, 'CreateLocation', {orgId, name: name.value, parentLocationId: parent.value}));
    if (r) {
      status.ok(`Created ${r.location.name}.`);
      name.value = '';
      load();
    }
  });

  function options(except) {
    // A location cannot move under itself or its descendants; the server
    // refuses that too, the list just does not offer it.
    const below = new Set([except]);
    let grew = true;
    while (grew) {
      grew = false;
      for (const l of locs) if (below.has(l.parentLocationId) && !below.has(l.id)) { below.add(l.id); grew = true; }
    }
    return [['', 'Top level'], ...locs.filter((l) => !below.has(l.id)).map((l) => [l.id, l.name])];
  }

  function row(n) {
    const l = n.loc;
    const res = `location/${l.id}`;
    const moveTo = select(options(l.id), l.parentLocationId || '');
    const moveBtn = h('button', {type: 'button', class: 'secondary', id: `move-${l.id}`}, 'Move');
    moveBtn.addEventListener('click', async () => {
      const r = await run(moveBtn, status, () => client.unary(SVC.location, 'MoveLocation', {locationId: l.id, newParentLocationId: moveTo.value}));
      if (r) { status.ok(`Moved ${l.name}.`); load(); }
    });
    const shareOrg = h('input', {type: 'text', autocomplete: 'off', spellcheck: 'false', placeholder: 'organization ID'});
    const shareBtn = h('button', {type: 'button', class: 'secondary', id: `share-${l.id}`}, 'Share');
    shareBtn.addEventListener('click', async () => {
      const r = await run(shareBtn, status, () => client.unary(SVC.location, 'ShareLocation', {locationId: l.id, orgId: shareOrg.value.trim()}));
      if (r) { status.ok(`Shared ${l.name} with org/${shareOrg.value.trim()}.`); load(); }
    });
    const shared = (l.sharedWith || []).map((o) => h('li', {'data-shared': o}, `org/${o} `,
      when(can('location.share.remove', res), confirmButton({
        id: `unshare-${l.id}-${o}`, label: 'Stop sharing', yes: 'Stop sharing',
        question: `Stop sharing ${l.name} with org/${o}? Grants and API keys its owners made here end too.`,
        onConfirm: async () => {
          const r = await run(null, status, () => client.unary(SVC.location, 'UnshareLocation', {locationId: l.id, orgId: o}));
          if (r) { status.ok(`Stopped sharing ${l.name} with org/${o} (${r.grantsRemoved || 0} grants and ${r.apiKeysRemoved || 0} API keys removed).`); load(); }
        },
      }))));
    const del = when(can('location.delete', res), confirmButton({
      id: `delete-${l.id}`, label: 'Delete', yes: 'Delete', question: `Delete ${l.name}?`,
      onConfirm: async () => {
        const r = await run(null, status, () => client.unary(SVC.location, 'DeleteLocation', {locationId: l.id}));
        if (r) { status.ok(`Deleted ${l.name}.`); load(); }
      },
    }));
    const sid = `share-org-${l.id}`;
    const mid = `move-to-${l.id}`;
    moveTo.id = mid;
    shareOrg.id = sid;
    return h('li', {'data-location': l.id},
      h('div', {class: 'node card'},
        h('h3', null, l.name, ' ', h('span', {class: 'muted'}, res)),
        shared.length ? h('div', null, 'Shared with:', h('ul', {class: 'shared'}, shared)) : null,
        h('div', {class: 'row-actions'},
          when(can('location.move', res), h('span', {class: 'inline-field'}, h('label', {for: mid}, 'Move under'), moveTo, moveBtn)),
          when(can('location.share.add', res), h('span', {class: 'inline-field'}, h('label', {for: sid}, 'Share with'), shareOrg, shareBtn)),
          del)),
      n.children.length ? h('ul', {class: 'tree'}, n.children.map(row)) : null);
  }

  async function load() {
    try {
      const r = await client.unary(SVC.location, 'ListLocations', {orgId});
      locs = r.locations || [];
    } catch (err) {
      status.fail(err);
      return;
    }
    const keep = parent.value;
    replace(parent, [['', 'Top level of the organization'], ...locs.map((l) => [l.id, l.name])].map(([v, t]) => h('option', {value: v}, t)));
    parent.value = locs.some((l) => l.id === keep) ? keep : '';
    replace(list, locs.length ? h('ul', {class: 'tree', role: 'list'}, tree(locs).map(row)) : h('p', null, 'No locations you may see.'));
  }
  load();
  return h('div', null, status, list, form);
}
