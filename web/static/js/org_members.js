// An organization's members and invitations: who holds which role where
// (change a role, remove it), invite someone by email (the code is mailed
// to them only), resend or revoke an invitation.
//
// The fleet API has no call that lists pending invitations: the page lists
// those sent from it, and resends or revokes any other by its ID (as
// `outpost user invite` printed it).

import {h, replace} from './dom.js';
import {ROLES, SVC, confirmButton, field, run, select, statusLine, table, time, when} from './ui.js';

/**
 * scopeList fills a <datalist> with the organization and its locations,
 * for scope inputs.
 * @param {any} client
 * @param {string} orgId
 * @param {string} id
 */
export function scopeList(client, orgId, id) {
  const dl = h('datalist', {id}, h('option', {value: `org/${orgId}`}, 'the whole organization'));
  client.unary(SVC.location, 'ListLocations', {orgId}).then((r) => {
    for (const l of r.locations || []) dl.append(h('option', {value: `location/${l.id}`}, l.name));
  }, () => {});
  return dl;
}

/**
 * grantControls returns the change-role and remove controls of one grant.
 * @param {any} ctx
 * @param {{subject: string, role: string, scope: string, email?: string}} g
 * @param {string} key a unique id part
 * @param {ReturnType<typeof statusLine>} status
 * @param {() => void} reload
 */
export function grantControls(ctx, g, key, status, reload) {
  const who = g.email || g.subject;
  const role = select(ROLES, g.role);
  role.id = `role-${key}`;
  role.setAttribute('aria-label', `Role of ${who} on ${g.scope}`);
  const change = h('button', {type: 'button', class: 'secondary', id: `change-${key}`}, 'Change');
  change.addEventListener('click', async () => {
    const r = await run(change, status, () => ctx.client.unary(SVC.role, 'ChangeRole', {subject: g.subject, role: role.value, scope: g.scope}));
    if (r) { status.ok(`${who} is now ${r.grant.role} of ${g.scope}.`); reload(); }
  });
  const remove = confirmButton({
    id: `remove-${key}`, label: 'Remove', yes: 'Remove role',
    question: `Remove ${who}'s ${g.role} role on ${g.scope}?`,
    onConfirm: async () => {
      const r = await run(null, status, () => ctx.client.unary(SVC.role, 'RemoveRole', {subject: g.subject, scope: g.scope}));
      if (r) { status.ok(`Removed ${who}'s role on ${g.scope}.`); reload(); }
    },
  });
  return when(ctx.can('role.change', g.scope), h('span', {class: 'row-actions'}, role, change, remove));
}

/** @param {any} ctx the org page's context */
export function membersPage(ctx) {
  const {client, orgId, can} = ctx;
  const status = statusLine('members-status');
  const members = h('div', {id: 'members'});

  async function load() {
    let r;
    try {
      r = await client.unary(SVC.org, 'ListMembers', {orgId});
    } catch (err) {
      status.fail(err);
      replace(members);
      return;
    }
    const ms = r.members || [];
    const rows = [];
    ms.forEach((m, i) => (m.grants || []).forEach((g, j) => {
      rows.push([j === 0 ? m.user.email : '', `${g.role} of ${g.scope}`, j === 0 ? time(m.joinedAt) : '',
        grantControls(ctx, {...g, email: m.user.email}, `m${i}-${j}`, status, load)]);
    }));
    replace(members, ms.length ? table('members-list', 'Members', ['Member', 'Role', 'Joined', 'Change'], rows) : h('p', null, 'No members.'));
  }

  // Invite.
  const email = h('input', {type: 'email', required: true, autocomplete: 'off', spellcheck: 'false'});
  const role = select(ROLES, 'operator');
  const scope = h('input', {type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', list: 'invite-scopes', value: `org/${orgId}`});
  const send = h('button', {type: 'submit', id: 'invite-send'}, 'Send invitation');
  const sent = h('div', {id: 'invites-sent'});
  const sentRows = [];
  const inviteForm = when(can('invite.manage', `org/${orgId}`), h('form', {class: 'card', id: 'invite-form', 'aria-labelledby': 'invite-title'},
    h('h2', {id: 'invite-title'}, 'Invite someone'),
    field('invite-email', 'Email', email),
    field('invite-role', 'Role', role),
    field('invite-scope', 'Scope', scope, 'org/ID, location/ID or machine/ID: where the role applies'),
    scopeList(client, orgId, 'invite-scopes'),
    h('div', {class: 'actions'}, send)));
  inviteForm.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await run(send, status, () => client.unary(SVC.user, 'InviteUser', {email: email.value.trim(), role: role.value, scope: scope.value.trim()}));
    if (r) {
      status.ok(`Invitation mailed to ${r.invite.email}, and only there.`);
      email.value = '';
      sentRows.unshift(r.invite);
      showSent();
    }
  });

  function inviteActions(id, onRevoked) {
    const resend = h('button', {type: 'button', class: 'secondary', id: `resend-${id}`}, 'Resend');
    resend.addEventListener('click', async () => {
      const r = await run(resend, status, () => client.unary(SVC.user, 'ResendInvite', {inviteId: id}));
      if (r) status.ok(`A new code was mailed to ${r.invite.email}; the old one no longer works.`);
    });
    const revoke = confirmButton({
      id: `revoke-${id}`, label: 'Revoke', yes: 'Revoke invitation', question: 'Revoke this invitation? Its code stops working.',
      onConfirm: async () => {
        const r = await run(null, status, () => client.unary(SVC.user, 'RevokeInvite', {inviteId: id}));
        if (r) { status.ok(`Revoked invitation ${id}.`); onRevoked(); }
      },
    });
    return h('span', {class: 'row-actions'}, resend, revoke);
  }

  function showSent() {
    replace(sent, sentRows.length ? [h('h2', null, 'Invitations sent from this page'),
      table('invites-list', 'Invitations sent from this page', ['Invited', 'Role', 'Expires', 'ID', 'Manage'],
        sentRows.map((inv) => [inv.email, `${inv.role} of ${inv.scope}`, time(inv.expiresAt), h('code', null, inv.id),
          inviteActions(inv.id, () => { sentRows.splice(sentRows.indexOf(inv), 1); showSent(); })]),
        (i) => ({'data-invite': sentRows[i].id}))] : null);
  }

  // Any invitation, by its ID.
  const byId = h('input', {type: 'text', autocomplete: 'off', spellcheck: 'false'});
  const byIdActions = h('span');
  const byIdForm = when(can('invite.manage', `org/${orgId}`), h('form', {class: 'card', id: 'invite-by-id'},
    h('h2', null, 'An invitation by its ID'),
    field('invite-id', 'Invitation ID', byId, 'as `outpost user invite` printed it'),
    byIdActions));
  byIdForm.addEventListener('submit', (ev) => ev.preventDefault());
  byId.addEventListener('input', () => {
    const id = byId.value.trim();
    replace(byIdActions, id ? inviteActions(id, () => { byId.value = ''; replace(byIdActions); }) : null);
  });

  load();
  return h('div', null, status, members, inviteForm, sent, byIdForm);
}
