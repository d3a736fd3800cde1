// The organization pages: `${basePath}orgs` lists the organizations the
// signed-in user holds a role in, and `${basePath}orgs/{orgId}/{page}` is
// one page of one organization (locations, members and invites, roles, API
// keys, fragments, audit log), each in a module of its own. The pages call
// the fleet API as the CLI does; what they show and refuse is the server's.

import {h, replace} from './dom.js';
import {SVC, checker, messageOf, whoAmI} from './ui.js';
import {locationsPage} from './org_locations.js';
import {membersPage} from './org_members.js';
import {rolesPage} from './org_roles.js';
import {apiKeysPage} from './org_apikeys.js';
import {fragmentsPage} from './org_fragments.js';
import {auditPage} from './org_audit.js';

/** The pages of an organization: [path segment, title, render]. */
export const ORG_PAGES = [
  ['locations', 'Locations', locationsPage],
  ['members', 'Members and invites', membersPage],
  ['roles', 'Roles', rolesPage],
  ['apikeys', 'API keys', apiKeysPage],
  ['fragments', 'Fragments', fragmentsPage],
  ['audit', 'Audit log', auditPage],
];

/** An organization's ID as the cloud makes them; anything else is no route. */
const ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * orgRoute reads a path below basePath: 'orgs' is the list, and
 * 'orgs/{id}' or 'orgs/{id}/{page}' one page. null for any other path.
 * @param {string} rest the path below basePath, without a leading slash
 * @returns {{orgId: string, page: string}|null}
 */
export function orgRoute(rest) {
  const seg = rest.replace(/\/+$/, '').split('/');
  if (seg[0] !== 'orgs' || seg.length > 3) return null;
  if (seg.length === 1) return {orgId: '', page: ''};
  if (!ID.test(seg[1])) return null;
  const page = seg[2] || 'locations';
  if (!ORG_PAGES.some(([p]) => p === page)) return null;
  return {orgId: seg[1], page};
}

/**
 * orgsIndex lists the caller's organizations, each with its pages.
 * @param {{client: any, basePath: string}} opts
 */
export function orgsIndex(opts) {
  const status = h('p', {id: 'orgs-status', class: 'status', role: 'status', 'aria-live': 'polite'}, 'Loading organizations…');
  const list = h('ul', {id: 'orgs-list', class: 'plain'});
  opts.client.unary(SVC.org, 'ListOrgs', {}).then((r) => {
    const orgs = r.orgs || [];
    replace(status, orgs.length ? `${orgs.length} organization${orgs.length === 1 ? '' : 's'}.` : 'You hold no role in any organization.');
    replace(list, orgs.map((o) => h('li', {class: 'card', 'data-org': o.id},
      h('h2', null, h('a', {href: `${opts.basePath}orgs/${o.id}/locations`}, o.name)),
      h('p', {class: 'muted'}, `org/${o.id}`),
      h('ul', {class: 'inline'}, ORG_PAGES.map(([p, title]) => h('li', null, h('a', {href: `${opts.basePath}orgs/${o.id}/${p}`}, title)))))));
  }, (err) => {
    status.className = 'status error';
    status.setAttribute('role', 'alert');
    replace(status, messageOf(err));
  });
  return h('section', {id: 'orgs', 'aria-labelledby': 'orgs-title'},
    h('h1', {id: 'orgs-title'}, 'Organizations'), status, list);
}

/**
 * orgPage returns one page of an organization with the organization's own
 * navigation above it.
 * @param {{client: any, basePath: string, orgId: string, page: string, navigate: (path: string) => void}} opts
 */
export function orgPage(opts) {
  const {client, basePath, orgId, page} = opts;
  const [, title, render] = ORG_PAGES.find(([p]) => p === page);
  const heading = h('span', {id: 'org-name'}, `org/${orgId}`);
  const ctx = {
    client, basePath, orgId,
    navigate: opts.navigate,
    can: checker(client, whoAmI(client)),
  };
  // The organization's name, if the caller holds a role in it; a location
  // or machine shared with the caller's organization shows its ID.
  client.unary(SVC.org, 'ListOrgs', {}).then((r) => {
    const o = (r.orgs || []).find((x) => x.id === orgId);
    if (o) replace(heading, o.name);
  }, () => {});
  const tabs = h('nav', {class: 'subnav', 'aria-label': 'Organization'},
    h('ul', null, ORG_PAGES.map(([p, t]) => h('li', null,
      h('a', {href: `${basePath}orgs/${orgId}/${p}`, id: `org-tab-${p}`, 'aria-current': p === page ? 'page' : null}, t)))));
  return h('section', {id: 'org', 'data-page': page, 'aria-labelledby': 'org-title'},
    h('p', {class: 'crumbs'}, h('a', {href: `${basePath}orgs`}, 'Organizations'), ' › ', heading),
    tabs,
    h('h1', {id: 'org-title'}, title),
    render(ctx));
}
