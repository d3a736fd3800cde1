// The part's console: its sign-in (console_auth.js) and its pages, STATUS,
// CONTROL, LOGS, DATA and CONFIG, each calling the part's control API on
// the page's own origin. The part decides every call with its cached
// grants, with or without the cloud; the page shows its answers and
// refusals as they are. Hiding a link is a convenience.

import {Code, createClient} from './connect.js';
import {byId, h, replace} from './dom.js';
import {claimsOf, delegatedFetch, forgetSession, loadSession, readFragment, saveSession, sessionOf} from './console_auth.js';
import {componentCards} from './console_cards.js';

const CONTROL = 'outpost.control.v1.ControlService';

/** errText is what a failed call says. */
function errText(err) {
  return err && err.message ? err.message : String(err);
}

/** bytes formats a byte count. */
export function bytes(n) {
  n = Number(n || 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** duration formats a protobuf JSON duration ("3600s"). */
export function duration(d) {
  const s = Number(String(d || '0s').replace(/s$/, ''));
  if (!Number.isFinite(s)) return '—';
  const days = Math.floor(s / 86400);
  const hours = Math.floor((s % 86400) / 3600);
  const mins = Math.floor((s % 3600) / 60);
  if (days) return `${days} d ${hours} h`;
  if (hours) return `${hours} h ${mins} min`;
  return `${mins} min`;
}

/** The sign-in card: the fingerprint first, then how to sign in. */
function signInCard(cfg, problem) {
  const link = h('input', {id: 'console-link', type: 'password', autocomplete: 'off', spellcheck: 'false'});
  const go = h('button', {type: 'submit', id: 'console-link-submit'}, 'Open');
  const status = h('p', {class: problem ? 'status error' : 'status', id: 'signin-status', role: 'status', 'aria-live': 'polite'}, problem || '');
  const form = h('form', {class: 'card signin', id: 'signin', 'aria-labelledby': 'signin-title'},
    h('h1', {id: 'signin-title'}, 'Sign in to this part'),
    h('p', {class: 'fingerprint'},
      'This part’s certificate fingerprint (SHA-256) — compare it with the fleet app’s SECURITY tab or `outpost robot trust` before anything else:',
      h('code', {id: 'fingerprint'}, cfg.fingerprint || '(unknown)')),
    h('p', null, 'On a laptop with the outpost CLI, run ', h('code', null, 'outpost robot console'),
      ': it finds this part on the network, checks its fingerprint, and opens this page signed in, for this part only, for up to 12 hours. No password is typed here, and no cloud is needed.'),
    h('p', null, 'On a phone: run ', h('code', null, 'outpost robot console --qr'),
      ' on the laptop and scan the code, or paste the console link it printed:'),
    h('div', {class: 'field'}, h('label', {for: 'console-link'}, 'Console link'), link),
    h('div', {class: 'actions'}, go),
    status);
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const v = link.value;
    link.value = '';
    const i = v.indexOf('#');
    if (i < 0) {
      status.className = 'status error';
      replace(status, 'That is not a console link: it has no #d=…&k=… part.');
      return;
    }
    location.hash = v.slice(i);
    location.reload();
  });
  return form;
}

/**
 * accessEnded explains a refusal that ends the session: the grants expired
 * (the part's own words say since when and what to do) or the sign-in did.
 */
function accessEnded(cfg, err) {
  return h('section', {class: 'card', id: 'access-ended', role: 'alert'},
    h('h1', null, 'Access to this part ended'),
    h('p', {id: 'access-ended-reason'}, errText(err)),
    h('p', null, 'What to do: if the part has not reached the cloud for too long, reconnect it to the network so it syncs (its grants renew at the next sync), or, on the robot itself, use the break-glass socket: ',
      h('code', null, 'sudo outpost robot --socket /run/outpost/control.sock status'),
      '. If only your sign-in ended, run ', h('code', null, 'outpost robot console'), ' again.'),
    signInCard(cfg));
}

/** statusPage: sync state, time left offline, versions, resources' health, store use. */
async function statusPage(api, who) {
  const [st, res] = await Promise.all([
    api.unary(CONTROL, 'Status', {}),
    who.allowedActions && who.allowedActions.includes('machine.control') ?
      api.unary('outpost.control.v1.ComponentService', 'ListResources', {}).catch((err) => ({error: err})) : Promise.resolve(null),
  ]);
  const row = (label, value, id) => h('tr', null, h('th', {scope: 'row'}, label), h('td', {id}, value));
  const state = String(st.syncState || 'SYNC_STATE_UNSPECIFIED').replace('SYNC_STATE_', '').toLowerCase();
  const used = Number(st.storeBytes || 0);
  const budget = Number(st.storeBudgetBytes || 0);
  const resources = res && res.resources ? res.resources : [];
  return h('section', {id: 'status', 'aria-labelledby': 'status-title'},
    h('h1', {id: 'status-title'}, 'Status'),
    h('table', {class: 'list'}, h('tbody', null,
      row('Part', st.partId || '—', 'status-part'),
      row('Machine', st.machineId || '—', 'status-machine'),
      row('Cloud', state, 'status-sync'),
      row('Last contact', st.lastContact || 'never', 'status-contact'),
      row('Time left offline', duration(st.timeLeft), 'status-left'),
      row('Grants', `version ${st.grantsVersion || 0}, expire ${st.grantsExpireAt || '—'}`, 'status-grants'),
      row('Daemon', st.version || '—', 'status-version'),
      row('Config', `version ${st.configVersion || 0}`, 'status-config'),
      row('Store', budget ? `${bytes(used)} of ${bytes(budget)} (${Math.round((100 * used) / budget)} %)` : bytes(used), 'status-store'),
      row('Certificate', st.certSha256 || '—', 'status-cert'))),
    h('h2', null, 'Resources'),
    res && res.error ? h('p', {class: 'error'}, errText(res.error)) :
      resources.length === 0 ? h('p', null, res ? 'No resources.' : 'Your role here does not see resources.') :
        h('table', {class: 'list', id: 'status-resources'},
          h('thead', null, h('tr', null, ['Resource', 'Kind', 'State', 'Error'].map((x) => h('th', {scope: 'col'}, x)))),
          h('tbody', null, resources.map((r) => h('tr', {'data-resource': r.name},
            h('td', null, r.name), h('td', null, String(r.kind || '').replace('RESOURCE_KIND_', '').toLowerCase()),
            h('td', null, h('span', {class: `badge ${r.state === 'RESOURCE_STATE_RUNNING' ? 'ok' : 'off'}`}, String(r.state || '').replace('RESOURCE_STATE_', '').toLowerCase())),
            h('td', null, r.error || ''))))));
}

/** controlPage: stop everything, then a card per component. */
async function controlPage(api) {
  const call = (service, method, req) => api.unary(service, method, req);
  const stopAll = h('button', {type: 'button', id: 'stop-all'}, 'Stop everything');
  const line = h('p', {class: 'status', id: 'stop-all-status', role: 'status'});
  stopAll.addEventListener('click', async () => {
    stopAll.disabled = true;
    try {
      const r = await api.unary(CONTROL, 'StopAll', {});
      const failed = Object.entries(r.errors || {});
      line.className = failed.length ? 'status error' : 'status';
      replace(line, failed.length ? failed.map(([k, v]) => `${k}: ${v}`).join('; ') : 'Everything stopped.');
    } catch (err) {
      line.className = 'status error';
      replace(line, errText(err));
    } finally {
      stopAll.disabled = false;
    }
  });
  return h('section', {id: 'control', 'aria-labelledby': 'control-title'},
    h('h1', {id: 'control-title'}, 'Control'),
    h('div', {class: 'actions'}, stopAll), line,
    await componentCards(call));
}

/** logsPage: the part's recent log, and a button to follow it. */
async function logsPage(api) {
  const level = h('select', {id: 'logs-level'}, ['', 'debug', 'info', 'warn', 'error'].map((l) => h('option', {value: l}, l || 'all')));
  const tbody = h('tbody', {id: 'logs-entries'});
  const follow = h('button', {type: 'button', id: 'logs-follow', class: 'secondary'}, 'Follow');
  const line = h('p', {class: 'status', id: 'logs-status', role: 'status'});
  const rowOf = (e) => h('tr', null, h('td', null, e.time || ''), h('td', null, e.level || ''), h('td', null, e.logger || ''), h('td', null, e.message || ''), h('td', null, e.fieldsJson || ''));
  let following = null;
  async function load() {
    const r = await api.unary(CONTROL, 'TailLogs', {limit: 200, minLevel: level.value});
    replace(tbody, (r.entries || []).map(rowOf));
  }
  level.addEventListener('change', () => load().catch((err) => replace(line, errText(err))));
  follow.addEventListener('click', async () => {
    if (following) {
      following.abort();
      return;
    }
    following = new AbortController();
    replace(follow, 'Stop following');
    replace(line, 'Following…');
    try {
      for await (const m of api.stream(CONTROL, 'FollowLogs', {minLevel: level.value}, {signal: following.signal})) {
        if (m.entry) tbody.append(rowOf(m.entry));
      }
    } catch (err) {
      if (err.code !== Code.Canceled) replace(line, errText(err));
    } finally {
      following = null;
      replace(follow, 'Follow');
      if (line.textContent === 'Following…') replace(line, '');
    }
  });
  await load();
  return h('section', {id: 'logs', 'aria-labelledby': 'logs-title'},
    h('h1', {id: 'logs-title'}, 'Logs on the part'),
    h('div', {class: 'field'}, h('label', {for: 'logs-level'}, 'Lowest level'), level),
    h('div', {class: 'actions'}, follow), line,
    h('div', {class: 'table-wrap'}, h('table', {class: 'list'},
      h('thead', null, h('tr', null, ['Time', 'Level', 'Logger', 'Message', 'Fields'].map((x) => h('th', {scope: 'col'}, x)))), tbody)));
}

/** download offers text as a file. */
function download(name, text) {
  const url = URL.createObjectURL(new Blob([text], {type: 'application/x-ndjson'}));
  const a = h('a', {href: url, download: name, hidden: true});
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

/**
 * dataPage: the captures on the part; tags and delete for who may edit
 * data, export for who may export it. The part leaves out the tags for who
 * may not see them (an operator, by the seed's data rules); the page then
 * shows no tag column either. Export takes the selected captures, or the
 * ones the table shows when none is selected, so the file holds what was
 * shown.
 */
async function dataPage(api, who) {
  const may = (a) => Boolean(who && who.allowedActions && who.allowedActions.includes(a));
  const seesTags = may('data.tags.view');
  const edits = may('data.edit');
  const tbody = h('tbody', {id: 'data-captures'});
  const line = h('p', {class: 'status', id: 'data-status', role: 'status', 'aria-live': 'polite'});
  const tags = h('input', {id: 'data-tags', type: 'text', spellcheck: 'false', placeholder: 'tag1, tag2'});
  const add = h('button', {type: 'button', id: 'data-tag-add', class: 'secondary'}, 'Add tags');
  const remove = h('button', {type: 'button', id: 'data-tag-remove', class: 'secondary'}, 'Remove tags');
  const del = h('button', {type: 'button', id: 'data-delete', class: 'secondary'}, 'Delete');
  const exp = h('button', {type: 'button', id: 'data-export', class: 'secondary'}, 'Export');
  let shown = [];
  const selected = () => [...tbody.querySelectorAll('input[type=checkbox]:checked')].map((c) => c.value);
  const say = (text, bad) => { line.className = bad ? 'status error' : 'status'; replace(line, text); };
  async function load() {
    const r = await api.unary(CONTROL, 'ListCaptures', {limit: 500});
    const caps = r.captures || [];
    shown = caps.map((c) => c.id);
    replace(tbody, caps.map((c) => h('tr', {'data-capture': c.id},
      h('td', null, h('input', {type: 'checkbox', value: c.id, 'aria-label': `capture ${c.id}`})),
      h('td', null, c.id), h('td', null, c.time || ''), h('td', null, c.component || ''), h('td', null, c.method || ''),
      seesTags ? h('td', {'data-tags': ''}, (c.tags || []).join(', ')) : null, h('td', null, bytes(c.size)))));
    return caps.length;
  }
  const act = (fn) => async () => {
    try {
      say(await fn());
      await load();
    } catch (err) {
      say(errText(err), true);
    }
  };
  const tagList = () => tags.value.split(',').map((t) => t.trim()).filter(Boolean);
  add.addEventListener('click', act(async () => `${(await api.unary(CONTROL, 'TagCaptures', {ids: selected(), add: tagList()})).changed || 0} changed.`));
  remove.addEventListener('click', act(async () => `${(await api.unary(CONTROL, 'TagCaptures', {ids: selected(), remove: tagList()})).changed || 0} changed.`));
  del.addEventListener('click', act(async () => `${(await api.unary(CONTROL, 'DeleteCaptures', {ids: selected()})).deleted || 0} deleted.`));
  exp.addEventListener('click', async () => {
    const ids = selected().length ? selected() : shown;
    if (ids.length === 0) {
      say('There is nothing to export.');
      return;
    }
    try {
      const lines = [];
      for await (const m of api.stream(CONTROL, 'ExportCaptures', {ids})) lines.push(JSON.stringify(m));
      download('captures.ndjson', lines.join('\n') + '\n');
      say(`Exported ${lines.length} capture${lines.length === 1 ? '' : 's'}.`);
    } catch (err) {
      say(errText(err), true);
    }
  });
  const n = await load();
  say(`${n} capture${n === 1 ? '' : 's'} on the part.`);
  const heads = ['', 'ID', 'Time', 'Component', 'Method', ...(seesTags ? ['Tags'] : []), 'Size'];
  return h('section', {id: 'data', 'aria-labelledby': 'data-title'},
    h('h1', {id: 'data-title'}, 'Data on the part'),
    h('p', null, edits ? 'Select captures, then tag, delete or export them; export with none selected takes the captures shown.' :
      'Select captures to export, or none to export the captures shown.'),
    edits ? h('div', {class: 'field'}, h('label', {for: 'data-tags'}, 'Tags'), tags) : null,
    h('div', {class: 'actions'}, edits ? [add, remove, del] : null, may('data.export') ? exp : null), line,
    h('div', {class: 'table-wrap'}, h('table', {class: 'list'},
      h('thead', null, h('tr', null, heads.map((x) => h('th', {scope: 'col'}, x)))), tbody)));
}

/**
 * configPage: the running config, and an edit. An edit made here carries
 * no endorsement (the page holds no key the cloud knows), so the part
 * applies it and the cloud keeps it as a proposal for an owner.
 */
async function configPage(api) {
  const cur = await api.unary(CONTROL, 'GetConfig', {});
  const text = h('textarea', {id: 'config-text', rows: '18', spellcheck: 'false', class: 'code'}, JSON.stringify(cur.config || {}, null, 2));
  const save = h('button', {type: 'button', id: 'config-save'}, 'Apply on the part and propose');
  const line = h('p', {class: 'status', id: 'config-status', role: 'status', 'aria-live': 'polite'});
  save.addEventListener('click', async () => {
    save.disabled = true;
    try {
      let config;
      try {
        config = JSON.parse(text.value);
      } catch {
        throw new Error('the config is not JSON');
      }
      const r = await api.unary(CONTROL, 'EditConfig', {config, baseRevision: cur.machineRevision || '0'});
      line.className = 'status';
      replace(line, `${r.applied ? 'Applied on the part' : 'Not applied'}; queued for the cloud as proposal ${r.proposalSeq || 0}: it waits there for an owner's approval (outpost config proposals).`,
        r.conflict ? ` ${r.conflict}` : '');
    } catch (err) {
      line.className = 'status error';
      replace(line, errText(err));
    } finally {
      save.disabled = false;
    }
  });
  return h('section', {id: 'config', 'aria-labelledby': 'config-title'},
    h('h1', {id: 'config-title'}, 'Config'),
    h('p', {id: 'config-meta'}, `Version ${cur.version || 0}, based on machine revision ${cur.machineRevision || 0}${cur.localEdits ? ', with local edits the cloud has not accepted yet' : ''}.`),
    h('div', {class: 'field'}, h('label', {for: 'config-text'}, 'Config (JSON)'), text),
    h('div', {class: 'actions'}, save), line);
}

const PAGES = {'': statusPage, control: controlPage, logs: logsPage, data: dataPage, config: configPage};

/**
 * startConsole signs the page in (from the link's fragment or the kept
 * session) and shows the page its path names.
 * @param {{basePath: string, fingerprint?: string}} cfg
 */
export async function startConsole(cfg) {
  const main = byId('main');
  let session = null;
  try {
    const frag = readFragment(location.hash);
    if (frag) {
      // Off the address bar and out of the history at once.
      history.replaceState(null, '', location.pathname + location.search);
      session = await sessionOf(frag, cfg.fingerprint);
      await saveSession(session);
    } else {
      session = await loadSession();
    }
  } catch (err) {
    replace(main, signInCard(cfg, errText(err)));
    return;
  }
  if (!session) {
    replace(main, signInCard(cfg));
    return;
  }
  const base = cfg.basePath.replace(/\/+$/, '');
  const api = createClient({baseUrl: cfg.basePath, fetch: delegatedFetch(session, {aud: `tls/${cfg.fingerprint}`, healthUrl: `${base}/${CONTROL}/Health`})});
  let who;
  try {
    who = await api.unary(CONTROL, 'WhoAmI', {});
  } catch (err) {
    if (err.code === Code.Unauthenticated) {
      replace(main, accessEnded(cfg, err));
      return;
    }
    replace(main, h('p', {class: 'status error', role: 'alert'}, errText(err)));
    return;
  }
  const out = h('button', {type: 'button', id: 'signout', class: 'secondary'}, 'Sign out');
  out.addEventListener('click', async () => {
    await forgetSession();
    replace(byId('who'));
    replace(main, h('p', {class: 'status', id: 'signed-out', role: 'status'}, 'Signed out: the key this page held is gone.'), signInCard(cfg));
  });
  let until = '';
  try {
    until = new Date(Number(claimsOf(session.delegation).exp) * 1000).toISOString();
  } catch {
    until = '';
  }
  replace(byId('who'), h('span', {id: 'who-name'}, `${who.displayName || who.subject} (${who.role})`), ' ', out,
    until ? h('span', {class: 'visually-hidden'}, ` signed in until ${until}`) : null);
  const page = location.pathname.slice(cfg.basePath.length).replace(/\/+$/, '');
  const render = PAGES[page] || statusPage;
  replace(main, h('p', {class: 'status', role: 'status'}, 'Loading…'));
  try {
    replace(main, await render(api, who));
  } catch (err) {
    if (err.code === Code.Unauthenticated) {
      replace(main, accessEnded(cfg, err));
      return;
    }
    replace(main, h('section', {class: 'card', id: 'refused', role: 'alert'},
      h('h1', null, 'The part refused this page'),
      h('p', {id: 'refused-reason'}, errText(err))));
  }
}
