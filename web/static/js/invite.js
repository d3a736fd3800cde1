// Accepting an invitation: the mail's link opens `${basePath}invite#CODE`
// (the code rides in the fragment, so it never reaches a server's log or a
// Referer). The invitee sets a password (or gives the current one of an
// existing account); AcceptInvite gives the invited role, and SignIn with
// the same password opens a browser session (cookie). The page drops the
// code from the address bar as soon as it has read it.

import {h} from './dom.js';
import {SVC, field, run, statusLine} from './ui.js';

/**
 * codeFromHash reads the invitation code from a location hash ("#CODE" or
 * "#code=CODE"); empty when there is none.
 * @param {string} hash
 */
export function codeFromHash(hash) {
  let s = (hash || '').replace(/^#/, '');
  if (s.startsWith('code=')) s = s.slice(5);
  try {
    s = decodeURIComponent(s);
  } catch {
    return '';
  }
  return s.trim();
}

/**
 * invitePage returns the acceptance form. onSignedIn runs with the email
 * once the browser session is open.
 * @param {{client: any, code: string, onSignedIn: (email: string, grant: any) => void}} opts
 */
export function invitePage(opts) {
  const status = statusLine('invite-status');
  const code = h('input', {type: 'text', required: true, autocomplete: 'off', spellcheck: 'false', value: opts.code || ''});
  const pw = h('input', {type: 'password', required: true, autocomplete: 'new-password', minlength: '12'});
  const submit = h('button', {type: 'submit', id: 'invite-accept'}, 'Accept invitation');
  const form = h('form', {class: 'card signin', id: 'invite', 'aria-labelledby': 'invite-page-title', novalidate: true},
    h('h1', {id: 'invite-page-title'}, 'Accept your invitation'),
    opts.code ? null : h('p', null, 'Paste the code from your invitation mail.'),
    field('invite-code', 'Invitation code', code),
    field('invite-password', 'Password', pw,
      'A new password of at least 12 characters; if you already have an account, its current password.'),
    h('div', {class: 'actions'}, submit),
    status);
  if (opts.code) code.hidden = code.parentElement.hidden = true;
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    if (!code.value.trim() || !pw.value) {
      status.fail(new Error(code.value.trim() ? 'Enter a password.' : 'Enter the invitation code from your mail.'));
      code.parentElement.hidden = false;
      return;
    }
    status.ok('Accepting…');
    const done = await run(submit, status, async () => {
      const acc = await opts.client.unary(SVC.user, 'AcceptInvite', {code: code.value.trim(), password: pw.value});
      const email = acc.user.email;
      await opts.client.unary(SVC.auth, 'SignIn', {email, password: pw.value, cookieSession: true});
      return {email, grant: acc.grant};
    });
    if (done) {
      pw.value = '';
      opts.onSignedIn(done.email, done.grant);
    } else {
      code.parentElement.hidden = false;
    }
  });
  return form;
}
