// The page's entry point: it reads the config the server wrote into the
// page, lays out the shell (header, navigation, main region) for the fleet
// app or a part's console, and shows the sign-in form. The page decides
// nothing: it asks the server, and shows the server's answers and refusals
// as they are. Hiding a link is a convenience; the server decides.

import {Code, createClient} from './connect.js';
import {byId, h, replace} from './dom.js';
import {fleetPage} from './fleet.js';
import {parseRobotPath, robotPage} from './robot.js';
import {orgPage, orgRoute, orgsIndex} from './org.js';
import {codeFromHash, invitePage} from './invite.js';
// ---- The part's console (console_*.js): its own sign-in and pages. ----
import {startConsole} from './console_pages.js';
// ---- End of the console's block. ----

/**
 * readConfig returns the config the server wrote into the page's
 * <meta name="outpost-config">.
 * @returns {{app: string, title?: string, basePath: string, version?: string, partId?: string, fingerprint?: string}}
 */
export function readConfig() {
  const meta = document.querySelector('meta[name="outpost-config"]');
  if (!meta) throw new Error('the page has no outpost-config');
  const cfg = JSON.parse(meta.content);
  if (cfg.app !== 'fleet' && cfg.app !== 'console') throw new Error(`the page's app ${cfg.app} is unknown`);
  return cfg;
}

/**
 * The navigation of each app: [label, path below basePath]. Only pages that
 * exist are listed: a link to a page still to come would lead nowhere.
 */
const NAV = {
  fleet: [['Fleet', ''], ['Organizations', 'orgs']],
  console: [['Status', ''], ['Control', 'control'], ['Logs', 'logs'], ['Data', 'data'], ['Config', 'config']],
};

/**
 * renderShell fills the header, navigation and footer for cfg.
 * @param {ReturnType<typeof readConfig>} cfg
 */
export function renderShell(cfg) {
  replace(byId('where'), cfg.title || 'Outpost');
  const here = location.pathname;
  const links = NAV[cfg.app].map(([label, p]) => {
    const href = cfg.basePath + p;
    const current = here === href || (p !== '' && here.startsWith(href + '/'));
    return h('li', null, h('a', {href, 'aria-current': current ? 'page' : null}, label));
  });
  replace(byId('nav'), h('ul', null, links));
  const foot = [cfg.app === 'console' ? 'Part console' : 'Fleet'];
  if (cfg.version) foot.push(` · ${cfg.version}`);
  replace(byId('foot'), foot);
}

/**
 * signInForm returns the sign-in form. onSubmit gets {email, password} and
 * resolves to a line to show (who signed in), or throws an Error whose
 * message is shown as the server wrote it.
 * @param {{onSubmit: (creds: {email: string, password: string}) => Promise<string>, fingerprint?: string}} opts
 * @returns {HTMLElement}
 */
export function signInForm(opts) {
  const status = h('p', {class: 'status', id: 'signin-status', role: 'status', 'aria-live': 'polite'});
  const email = h('input', {id: 'signin-email', name: 'email', type: 'email', autocomplete: 'username', required: true, spellcheck: 'false'});
  const password = h('input', {id: 'signin-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true});
  const submit = h('button', {type: 'submit', id: 'signin-submit'}, 'Sign in');
  const form = h('form', {class: 'card signin', id: 'signin', 'aria-labelledby': 'signin-title', novalidate: true},
    h('h1', {id: 'signin-title'}, 'Sign in'),
    opts.fingerprint ? h('p', {class: 'fingerprint'},
      'This part’s certificate fingerprint (SHA-256) — compare it with the fleet app’s SECURITY tab or `outpost robot trust` before you type anything:',
      h('code', {id: 'fingerprint'}, opts.fingerprint)) : null,
    h('div', {class: 'field'}, h('label', {for: 'signin-email'}, 'Email'), email),
    h('div', {class: 'field'}, h('label', {for: 'signin-password'}, 'Password'), password),
    h('div', {class: 'actions'}, submit),
    status);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!email.value || !password.value) {
      status.className = 'status error';
      replace(status, 'Enter your email and your password.');
      return;
    }
    submit.disabled = true;
    status.className = 'status';
    replace(status, 'Signing in…');
    try {
      const who = await opts.onSubmit({email: email.value, password: password.value});
      password.value = '';
      replace(status, who);
    } catch (err) {
      status.className = 'status error';
      replace(status, err && err.message ? err.message : String(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

/**
 * signInWithCloud is the fleet app's sign-in: AuthService.SignIn with the
 * form's email and password, for a browser session. The cloud sets the
 * session's cookie (HttpOnly: this page never sees the token) and the
 * browser sends it with the page's calls. onSignedIn, if given, runs after.
 * @param {ReturnType<typeof createClient>} client
 * @param {(email: string) => void} [onSignedIn]
 */
export function signInWithCloud(client, onSignedIn) {
  return async ({email, password}) => {
    const resp = await client.unary('outpost.fleet.v1.AuthService', 'SignIn', {email, password, cookieSession: true});
    const who = resp.user && resp.user.email ? resp.user.email : email;
    if (onSignedIn) onSignedIn(who);
    else replace(byId('who'), who);
    return `Signed in as ${who}`;
  };
}

/**
 * showSignedIn puts who is signed in and a sign-out button in the header,
 * and the Fleet page in the main region.
 * @param {ReturnType<typeof readConfig>} cfg
 * @param {ReturnType<typeof createClient>} client
 * @param {string} who
 */
function showSignedIn(cfg, client, who) {
  const out = h('button', {type: 'button', id: 'signout', class: 'secondary'}, 'Sign out');
  out.addEventListener('click', async () => {
    out.disabled = true;
    try {
      await client.unary('outpost.fleet.v1.AuthService', 'SignOut', {});
    } catch (err) {
      // A session already ended (expired, revoked) is signed out.
      if (err.code !== Code.Unauthenticated) {
        out.disabled = false;
        replace(byId('who'), who, ' ', out, h('span', {class: 'error', role: 'alert'}, ` ${err.message}`));
        return;
      }
    }
    pageLife.abort();
    showSignIn(cfg, client, 'Signed out.');
  });
  replace(byId('who'), h('span', {id: 'who-email'}, who), ' ', out);
  followHistory(cfg, client);
  showRoute(cfg, client);
}

// --- Routes of the fleet app ----------------------------------------------
// Each route reads the path below basePath (null when it is not its page)
// and makes the page. Moving between pages of the app is history.pushState
// and showing the route again: no reload, and Back works.

/** The fleet app's pages, the first match shown. */
const ROUTES = [
  {match: parseRobotPath, page: (env, r) => robotPage({...env, machineId: r.machineId, tab: r.tab})},
  {match: orgRoute, page: (env, r) => r.orgId
    ? orgPage({client: env.client, basePath: env.cfg.basePath, orgId: r.orgId, page: r.page, navigate: env.navigate})
    : orgsIndex({client: env.client, basePath: env.cfg.basePath})},
  {match: (rest) => (rest === '' ? {} : null), page: (env) => fleetPage({client: env.client, syncSeconds: env.cfg.syncIntervalSeconds, basePath: env.cfg.basePath})},
];

/** The current page's lifetime: aborted when another page is shown. */
let pageLife = new AbortController();

/**
 * showRoute shows the page of the current URL in the main region.
 * @param {ReturnType<typeof readConfig>} cfg
 * @param {ReturnType<typeof createClient>} client
 */
function showRoute(cfg, client) {
  pageLife.abort();
  pageLife = new AbortController();
  const rest = location.pathname.startsWith(cfg.basePath) ? location.pathname.slice(cfg.basePath.length) : '';
  const navigate = (path) => {
    history.pushState(null, '', cfg.basePath + path);
    showRoute(cfg, client);
    byId('main').focus();
  };
  const env = {client, cfg, navigate, signal: pageLife.signal};
  for (const r of ROUTES) {
    const m = r.match(rest);
    if (m) {
      replace(byId('main'), r.page(env, m));
      return;
    }
  }
  replace(byId('main'), h('p', {class: 'status error', role: 'alert', id: 'not-found'}, 'There is no such page. ', h('a', {href: cfg.basePath}, 'Go to the fleet')));
}

/** onHistory shows the page Back and Forward lead to; set once, at sign-in. */
let onHistory = null;

function followHistory(cfg, client) {
  if (onHistory) removeEventListener('popstate', onHistory);
  onHistory = () => showRoute(cfg, client);
  addEventListener('popstate', onHistory);
}
// --- end of routes ---------------------------------------------------------

/** showSignIn shows the sign-in form, with a line above it if given. */
function showSignIn(cfg, client, line) {
  replace(byId('who'));
  const onSubmit = cfg.app === 'fleet' ? signInWithCloud(client, (who) => showSignedIn(cfg, client, who)) : signInWithCloud(client);
  const form = signInForm({onSubmit, fingerprint: cfg.fingerprint});
  replace(byId('main'), line ? h('p', {class: 'status', id: 'signed-out', role: 'status'}, line) : null, form);
}

// --- Routes of the organization pages and of invitations (org.js, invite.js) ---

/** pageRoute returns the path below basePath ('orgs/ID/roles'). */
function pageRoute(cfg) {
  const p = location.pathname;
  return p.startsWith(cfg.basePath) ? p.slice(cfg.basePath.length) : '';
}

/**
 * showInvite shows the invitation's acceptance; accepted, the invitee is
 * signed in (a browser session) and sees the Fleet page. The code is
 * taken out of the address bar at once.
 */
function showInvite(cfg, client) {
  const code = codeFromHash(location.hash);
  history.replaceState(null, '', cfg.basePath + 'invite');
  replace(byId('who'));
  replace(byId('main'), invitePage({client, code, onSignedIn: (email, grant) => {
    history.replaceState(null, '', cfg.basePath);
    showSignedIn(cfg, client, email);
    byId('main').prepend(h('p', {class: 'status', id: 'invite-accepted', role: 'status'},
      `Welcome: you are now ${grant ? `${grant.role} of ${grant.scope}` : 'in'}.`));
  }}));
}

// --- End of the organization and invitation routes ---

async function start() {
  const cfg = readConfig();
  renderShell(cfg);
  // ---- The part's console signs in with a delegation, never a password. ----
  if (cfg.app === 'console') {
    await startConsole(cfg);
    return;
  }
  // ---- End of the console's block. ----
  const client = createClient({baseUrl: cfg.basePath});
  if (cfg.app === 'fleet' && pageRoute(cfg) === 'invite') {
    // A second link opened in this tab changes only the fragment: read it.
    addEventListener('hashchange', () => {
      if (location.hash && pageRoute(cfg) === 'invite') showInvite(cfg, client);
    });
    showInvite(cfg, client);
    return;
  }
  if (cfg.app === 'fleet') {
    // A browser session from before (its cookie) signs the page in.
    try {
      const me = await client.unary('outpost.fleet.v1.AuthService', 'WhoAmI', {});
      if (me.email) {
        showSignedIn(cfg, client, me.email);
        return;
      }
    } catch {
      // Not signed in (or not a cloud): the form it is.
    }
  }
  showSignIn(cfg, client);
}

start();
