// An organization's audit log, newest first, a page at a time (the
// cloud's page tokens), filtered on the page by who, action, resource and
// outcome. Reading it needs role.change on the organization; anyone else
// sees the cloud's refusal.

import {h, replace} from './dom.js';
import {SVC, field, statusLine, table, time} from './ui.js';

/** Events per page. */
export const AUDIT_PAGE = 50;

/**
 * auditMatches reports whether an event matches a filter: every word is in
 * its subject, action, resource, procedure, reason or outcome, ignoring
 * case; "denied" and "allowed" match the decision.
 */
export function auditMatches(ev, query) {
  const hay = [ev.subject, ev.action, ev.resource, ev.procedure, ev.reason, ev.outcome, ev.allowed ? 'allowed' : 'denied']
    .map((s) => s || '').join(' ').toLowerCase();
  return query.toLowerCase().split(/\s+/).filter(Boolean).every((w) => hay.includes(w));
}

/** @param {any} ctx the org page's context */
export function auditPage(ctx) {
  const {client, orgId} = ctx;
  const status = statusLine('audit-status');
  const filter = h('input', {type: 'search', autocomplete: 'off', spellcheck: 'false', 'aria-controls': 'audit-list'});
  const list = h('div', {id: 'audit'});
  const newer = h('button', {type: 'button', class: 'secondary', id: 'audit-newer', disabled: true}, 'Newer');
  const older = h('button', {type: 'button', class: 'secondary', id: 'audit-older', disabled: true}, 'Older');
  const pageInfo = h('span', {id: 'audit-page'});
  // tokens[i] is the token of page i (page 0's is empty).
  const tokens = [''];
  let page = 0;
  let events = [];

  function render() {
    const q = filter.value.trim();
    const shown = q ? events.filter((e) => auditMatches(e, q)) : events;
    status.ok(q ? `${shown.length} of ${events.length} events on this page match “${q}”.` : `${events.length} events on this page.`);
    replace(pageInfo, `Page ${page + 1}`);
    replace(list, table('audit-list', 'Audit events', ['Time', 'Who', 'Action', 'Resource', 'Decision', 'Outcome', 'Why'],
      shown.map((e) => [time(e.time), e.subject || '—', e.action, e.resource || '—',
        h('span', {class: e.allowed ? 'badge ok' : 'badge off'}, e.allowed ? 'allowed' : 'denied'), e.outcome || '—', e.reason || '']),
      (i) => ({'data-event': shown[i].id})));
  }

  async function load() {
    newer.disabled = older.disabled = true;
    let r;
    try {
      r = await client.unary(SVC.audit, 'ListAuditEvents', {orgId, pageSize: AUDIT_PAGE, pageToken: tokens[page]});
    } catch (err) {
      status.fail(err);
      replace(list);
      return;
    }
    events = r.events || [];
    if (r.nextPageToken) tokens[page + 1] = r.nextPageToken;
    else tokens.length = page + 1;
    newer.disabled = page === 0;
    older.disabled = !r.nextPageToken;
    render();
  }

  filter.addEventListener('input', render);
  newer.addEventListener('click', () => { page--; load(); });
  older.addEventListener('click', () => { page++; load(); });
  load();
  return h('div', null,
    h('form', {role: 'search', class: 'search', onsubmit: (ev) => ev.preventDefault()},
      field('audit-filter', 'Filter this page by who, action, resource or outcome', filter)),
    status, list,
    h('nav', {class: 'pager actions', 'aria-label': 'Pages of audit events'}, newer, pageInfo, older));
}
