// An organization's API keys: create one holding a role on a scope (the
// cloud makes the key pair and returns the printed key once; it keeps only
// the public key), list them, revoke one. The SECURITY tab of a machine
// uses keyList for the keys on that machine.

import {h, replace} from './dom.js';
import {ROLES, SVC, confirmButton, field, run, secretBox, select, statusLine, table, time, when} from './ui.js';
import {scopeList} from './org_members.js';

/**
 * keyList returns a table of keys with a revoke button each, and the
 * created-key form. filter picks the keys shown; fixedScope, when given,
 * is the scope every new key gets (no scope field).
 * @param {{client: any, orgId: string, can: (a: string, r: string) => Promise<boolean>}} ctx
 * @param {{prefix: string, filter?: (k: any) => boolean, fixedScope?: string, caption: string}} opts
 */
export function keyList(ctx, opts) {
  const {client, orgId, can} = ctx;
  const p = opts.prefix;
  const status = statusLine(`${p}-status`);
  const list = h('div', {id: `${p}-keys`});
  const created = h('div', {id: `${p}-created`});

  async function load() {
    let r;
    try {
      r = await client.unary(SVC.apikey, 'ListAPIKeys', {orgId});
    } catch (err) {
      status.fail(err);
      replace(list);
      return;
    }
    const keys = (r.keys || []).filter(opts.filter || (() => true));
    replace(list, keys.length ? table(`${p}-list`, opts.caption, ['Name', 'Key ID', 'Roles', 'Created', 'Revoke'],
      keys.map((k) => [k.name, h('code', null, k.id), (k.grants || []).map((g) => `${g.role} of ${g.scope}`).join(', ') || '—',
        [time(k.createdAt), k.createdBy ? ` by ${k.createdBy}` : ''],
        when(can('role.change', k.scope), confirmButton({
          id: `${p}-revoke-${k.id}`, label: 'Revoke', yes: 'Revoke key',
          question: `Revoke ${k.name}? Programs using it stop working (parts from their next sync).`,
          onConfirm: async () => {
            const res = await run(null, status, () => client.unary(SVC.apikey, 'RevokeAPIKey', {keyId: k.id}));
            if (res) { status.ok(`Revoked ${k.name}.`); load(); }
          },
        }))]),
      (i) => ({'data-key': keys[i].id})) : h('p', {id: `${p}-none`}, 'No API keys.'));
  }

  const name = h('input', {type: 'text', required: true, autocomplete: 'off', maxlength: '100'});
  const role = select(ROLES, 'operator');
  const scope = h('input', {type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', list: `${p}-scopes`, value: opts.fixedScope || `org/${orgId}`});
  const create = h('button', {type: 'submit', id: `${p}-create`}, 'Create API key');
  const form = when(can('role.change', opts.fixedScope || `org/${orgId}`), h('form', {class: 'card', id: `${p}-form`, 'aria-labelledby': `${p}-form-title`},
    h('h2', {id: `${p}-form-title`}, 'New API key'),
    field(`${p}-name`, 'Name', name),
    field(`${p}-role`, 'Role', role),
    opts.fixedScope ? h('p', null, `Scope: ${opts.fixedScope}`) : [field(`${p}-scope`, 'Scope', scope, 'org/ID, location/ID or machine/ID'), scopeList(client, orgId, `${p}-scopes`)],
    h('div', {class: 'actions'}, create)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    replace(created);
    const r = await run(create, status, () => client.unary(SVC.apikey, 'CreateAPIKey', {name: name.value, role: role.value, scope: opts.fixedScope || scope.value.trim()}));
    if (r) {
      status.ok(`Created ${r.key.name} (${r.key.id}).`);
      name.value = '';
      replace(created, secretBox(`${p}-secret`, 'The API key', r.token));
      load();
    }
  });
  load();
  return h('div', null, status, created, list, form);
}

/** @param {any} ctx the org page's context */
export function apiKeysPage(ctx) {
  return keyList(ctx, {prefix: 'apikeys', caption: 'API keys'});
}
