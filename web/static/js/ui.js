// Small pieces the organization pages and the robot page's tabs share:
// labelled fields, tables that become cards on a phone, a status line that
// shows the server's refusal as the server wrote it (role=alert), buttons
// that ask before they act, and the convenience check of CheckAccess. None
// of it decides anything: the server decides every call, and a button this
// module hides after asking the server is only a convenience.

import {h, replace} from './dom.js';

/** Fully qualified names of the fleet API's services. */
export const SVC = Object.freeze({
  auth: 'outpost.fleet.v1.AuthService',
  org: 'outpost.fleet.v1.OrgService',
  location: 'outpost.fleet.v1.LocationService',
  machine: 'outpost.fleet.v1.MachineService',
  user: 'outpost.fleet.v1.UserService',
  apikey: 'outpost.fleet.v1.APIKeyService',
  role: 'outpost.fleet.v1.RoleService',
  access: 'outpost.fleet.v1.AccessService',
  audit: 'outpost.fleet.v1.AuditService',
  fragment: 'outpost.fleet.v1.FragmentService',
});

/** messageOf returns what to show for a failure: the server's own words. */
export function messageOf(err) {
  return err && err.message ? err.message : String(err);
}

/**
 * statusLine returns a live line for progress and results; fail(err) turns
 * it into an alert carrying the server's message, ok(text) back into a
 * polite status.
 * @param {string} id
 */
export function statusLine(id) {
  const el = h('p', {id, class: 'status', role: 'status', 'aria-live': 'polite'});
  el.ok = (...text) => {
    el.className = 'status';
    el.setAttribute('role', 'status');
    replace(el, ...text);
  };
  el.fail = (err) => {
    el.className = 'status error';
    el.setAttribute('role', 'alert');
    replace(el, messageOf(err));
  };
  return el;
}

/**
 * field returns a labelled form field.
 * @param {string} id the input's id
 * @param {string} label
 * @param {HTMLElement} input an input, select or textarea (its id is set)
 * @param {string} [hint] a line under the label, tied with aria-describedby
 */
export function field(id, label, input, hint) {
  input.id = id;
  const parts = [h('label', {for: id}, label)];
  if (hint) {
    input.setAttribute('aria-describedby', `${id}-hint`);
    parts.push(h('span', {id: `${id}-hint`, class: 'hint'}, hint));
  }
  return h('div', {class: 'field'}, parts, input);
}

/**
 * select returns a <select> of [value, label] options.
 * @param {[string, string][]} options
 * @param {string} [value]
 */
export function select(options, value) {
  const el = h('select', null, options.map(([v, l]) => h('option', {value: v}, l)));
  if (value !== undefined) el.value = value;
  return el;
}

/** ROLES are the roles a grant, invite or key may carry. */
export const ROLES = [['operator', 'operator'], ['owner', 'owner']];

/**
 * table returns a list table: a caption for screen readers, a heading row,
 * and a row per item; each cell carries its column's label, which a phone
 * shows beside the value (the table becomes cards).
 * @param {string} id
 * @param {string} caption
 * @param {string[]} columns
 * @param {any[][]} rows cells (anything h accepts)
 * @param {(i: number) => Object<string, string>} [rowAttrs]
 */
export function table(id, caption, columns, rows, rowAttrs) {
  return h('div', {class: 'table-wrap'},
    h('table', {id, class: 'list'},
      h('caption', {class: 'visually-hidden'}, caption),
      h('thead', null, h('tr', null, columns.map((c) => h('th', {scope: 'col'}, c)))),
      h('tbody', null, rows.map((cells, i) => h('tr', rowAttrs ? rowAttrs(i) : null,
        cells.map((c, j) => h('td', {'data-label': columns[j]}, c)))))));
}

/**
 * run calls fn with the button disabled, reports the outcome on status
 * (the server's refusal as an alert) and resolves to fn's value, or to
 * undefined when it failed.
 * @template T
 * @param {HTMLButtonElement|null} button
 * @param {ReturnType<typeof statusLine>} status
 * @param {() => Promise<T>} fn
 * @returns {Promise<T|undefined>}
 */
export async function run(button, status, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (err) {
    status.fail(err);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/**
 * confirmButton returns a button that asks before acting: the first press
 * shows the question with a confirming and a cancelling button (focus moves
 * to the cancelling one, so a second Enter does nothing harmful).
 * @param {{id: string, label: string, question: string, yes: string, onConfirm: () => any, danger?: boolean}} opts
 */
export function confirmButton(opts) {
  const wrap = h('span', {class: 'confirm'});
  const first = h('button', {type: 'button', id: opts.id, class: opts.danger === false ? 'secondary' : 'secondary danger'}, opts.label);
  first.addEventListener('click', () => {
    const cancel = h('button', {type: 'button', id: `${opts.id}-cancel`, class: 'secondary'}, 'Cancel');
    const yes = h('button', {type: 'button', id: `${opts.id}-yes`, class: 'danger'}, opts.yes);
    const q = h('span', {class: 'question', role: 'alert'}, opts.question, ' ');
    cancel.addEventListener('click', () => {
      replace(wrap, first);
      first.focus();
    });
    yes.addEventListener('click', async () => {
      yes.disabled = true;
      cancel.disabled = true;
      try {
        await opts.onConfirm();
      } finally {
        if (wrap.isConnected) replace(wrap, first);
      }
    });
    replace(wrap, q, yes, ' ', cancel);
    cancel.focus();
  });
  wrap.append(first);
  return wrap;
}

/**
 * secretBox shows a secret the server returns once, with what to do with
 * it; it is never stored by the page.
 * @param {string} id
 * @param {string} what such as 'The API key'
 * @param {string} secret
 */
export function secretBox(id, what, secret) {
  return h('div', {class: 'card secret', id, role: 'region', 'aria-label': `${what}, shown once`},
    h('p', null, h('strong', null, `${what}, shown once: copy it now.`),
      ' The cloud keeps only what it needs to check it, so it cannot show it again.'),
    h('pre', null, h('code', {id: `${id}-value`, tabindex: '0'}, secret)));
}

/**
 * checker returns can(action, resource): whether the signed-in subject may
 * do action on resource, as CheckAccess answers. It is for hiding buttons
 * only; when the question cannot be asked, the answer is yes and the
 * server decides at the call. Answers are cached per page.
 * @param {any} client
 * @param {string|Promise<string>} subject the caller, as WhoAmI names it
 */
export function checker(client, subject) {
  const cache = new Map();
  return (action, resource) => {
    const k = `${action} ${resource}`;
    if (!cache.has(k)) {
      cache.set(k, Promise.resolve(subject)
        .then((s) => client.unary(SVC.access, 'CheckAccess', {subject: s, action, resource}))
        .then((r) => Boolean(r.allowed), () => true));
    }
    return cache.get(k);
  };
}

/** whoAmI returns the caller's subject ("user/ID"), asked of the cloud. */
export function whoAmI(client) {
  return client.unary(SVC.auth, 'WhoAmI', {}).then((r) => r.subject);
}

/**
 * when hides el until can resolves to true: convenience only.
 * @param {Promise<boolean>} can
 * @param {HTMLElement} el
 * @returns {HTMLElement} el
 */
export function when(can, el) {
  el.hidden = true;
  can.then((ok) => { el.hidden = !ok; });
  return el;
}

/** time shows a protobuf JSON timestamp as a <time>, or a dash. */
export function time(ts) {
  if (!ts) return '—';
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return String(ts);
  return h('time', {datetime: d.toISOString()}, d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z'));
}

/**
 * download offers bytes as a file through a Blob URL (the CSP allows blob:
 * for this and for images only) and returns the link; forget() revokes it.
 * @param {string} id
 * @param {string} name the file's name
 * @param {string} text its content
 * @param {string} type its MIME type
 */
export function download(id, name, text, type) {
  const url = URL.createObjectURL(new Blob([text], {type}));
  const a = h('a', {id, href: url, download: name, class: 'button'}, `Download ${name}`);
  a.forget = () => URL.revokeObjectURL(url);
  return a;
}
