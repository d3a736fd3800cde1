// The page's entry point: it reads the config the server wrote into the
// page, lays out the shell (header, navigation, main region) for the fleet
// app or a part's console, and shows the sign-in form. The page decides
// nothing: it asks the server, and shows the server's answers and refusals
// as they are. Hiding a link is a convenience; the server decides.

import {createClient} from './connect.js';
import {byId, h, replace} from './dom.js';

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

/** The navigation of each app: [label, path below basePath]. */
const NAV = {
  fleet: [['Fleet', ''], ['Organization', 'org']],
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
 * form's email and password.
 * @param {ReturnType<typeof createClient>} client
 */
export function signInWithCloud(client) {
  return async ({email, password}) => {
    const resp = await client.unary('outpost.fleet.v1.AuthService', 'SignIn', {email, password});
    const who = resp.user && resp.user.email ? resp.user.email : email;
    replace(byId('who'), who);
    return `Signed in as ${who}`;
  };
}

function start() {
  const cfg = readConfig();
  renderShell(cfg);
  const client = createClient({baseUrl: cfg.basePath});
  replace(byId('main'), signInForm({onSubmit: signInWithCloud(client), fingerprint: cfg.fingerprint}));
}

start();
