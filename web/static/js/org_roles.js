// The roles that reach a scope of an organization (on it and everything
// above it): grant a role to a user or API key, change it, limit it to
// narrower scopes inside, remove it.

import {h, replace} from './dom.js';
import {ROLES, SVC, field, run, select, statusLine, table, time, when} from './ui.js';
import {grantControls, scopeList} from './org_members.js';

/** @param {any} ctx the org page's context */
export function rolesPage(ctx) {
  const {client, orgId, can} = ctx;
  const status = statusLine('roles-status');
  const scope = h('input', {type: 'text', autocomplete: 'off', spellcheck: 'false', list: 'role-scopes', value: `org/${orgId}`});
  const show = h('button', {type: 'submit', id: 'roles-show', class: 'secondary'}, 'Show roles');
  const grants = h('div', {id: 'roles'});
  const count = h('p', {id: 'roles-count'});
  const pick = h('form', {class: 'search', id: 'roles-scope-form'},
    field('roles-scope', 'Roles that reach', scope, 'org/ID, location/ID or machine/ID'),
    scopeList(client, orgId, 'role-scopes'),
    h('div', {class: 'actions'}, show));
  pick.addEventListener('submit', (ev) => { ev.preventDefault(); load(); });

  async function load() {
    const s = scope.value.trim();
    let r;
    try {
      r = await client.unary(SVC.role, 'ListRoles', {scope: s});
    } catch (err) {
      status.fail(err);
      replace(grants);
      return;
    }
    replace(count, `${(r.grants || []).length} grants reach ${s}.`);
    // The grant form, for the scope shown: convenience, the server decides.
    form.hidden = true;
    can('role.change', s).then((ok) => { form.hidden = !ok; if (ok) gscope.value = s; });
    const gs = r.grants || [];
    replace(grants, table('roles-list', `Roles that reach ${s}`, ['Who', 'Role', 'Scope', 'Since', 'Change', 'Limit to'],
      gs.map((g, i) => [g.email || g.subject, g.role, g.scope, time(g.createdAt),
        grantControls(ctx, g, `g${i}`, status, load), limitControl(g, i)]),
      (i) => ({'data-subject': gs[i].subject, 'data-scope': gs[i].scope})));
  }

  function limitControl(g, i) {
    const to = h('input', {type: 'text', autocomplete: 'off', spellcheck: 'false', id: `limit-to-g${i}`, 'aria-label': `Limit ${g.email || g.subject}'s role on ${g.scope} to (scopes inside it, separated by spaces)`});
    const btn = h('button', {type: 'button', class: 'secondary', id: `limit-g${i}`}, 'Limit');
    btn.addEventListener('click', async () => {
      const limitTo = to.value.split(/[\s,]+/).filter(Boolean);
      const r = await run(btn, status, () => client.unary(SVC.role, 'LimitAccess', {subject: g.subject, scope: g.scope, limitTo}));
      if (r) { status.ok(`${g.email || g.subject} is now ${g.role} of ${(r.grants || []).map((x) => x.scope).join(', ')} only.`); load(); }
    });
    return when(can('role.change', g.scope), h('span', {class: 'row-actions'}, to, btn));
  }

  // Grant.
  const subject = h('input', {type: 'text', required: true, autocomplete: 'off', spellcheck: 'false'});
  const role = select(ROLES, 'operator');
  const gscope = h('input', {type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', list: 'role-scopes', value: `org/${orgId}`});
  const grant = h('button', {type: 'submit', id: 'grant-submit'}, 'Grant role');
  const form = h('form', {class: 'card', id: 'grant-form', 'aria-labelledby': 'grant-title'},
    h('h2', {id: 'grant-title'}, 'Grant a role'),
    field('grant-subject', 'Who', subject, 'user/EMAIL, user/ID or apikey/ID'),
    field('grant-role', 'Role', role),
    field('grant-scope', 'Scope', gscope, 'org/ID, location/ID or machine/ID'),
    h('div', {class: 'actions'}, grant));
  form.hidden = true;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await run(grant, status, () => client.unary(SVC.role, 'GrantRole', {subject: subject.value.trim(), role: role.value, scope: gscope.value.trim()}));
    if (r) { status.ok(`${r.grant.email || r.grant.subject} is now ${r.grant.role} of ${r.grant.scope}.`); subject.value = ''; load(); }
  });

  load();
  return h('div', null, pick, status, count, grants, form);
}
