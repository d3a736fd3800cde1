// The CONFIG and HISTORY tabs: the machine's own config as JSON, edited in
// place, with the cloud validator's refusals shown at the lines they name;
// its revisions, a line diff between any two, and restoring an old one as a
// new revision. Saving and restoring are UpdateMachineConfig calls, decided
// by the server (machine.config.edit).

import {h, replace} from './dom.js';
import {diffLines, jsonPathLine} from './diff.js';

const CONFIG = 'outpost.fleet.v1.ConfigService';
const FRAGMENT = 'outpost.fleet.v1.FragmentService';

/** pretty is the JSON the tabs show and diff: two-space indented. */
export function pretty(v) {
  return JSON.stringify(v || {}, null, 2);
}

/**
 * problemsOf reads the validator's problems out of a refusal's message
 * ("... invalid config: components[1].name: duplicate ...; log_level: ...").
 * Each is {path, message}; a message without that shape is one problem
 * with no path.
 * @param {string} message
 * @returns {{path: string, message: string}[]}
 */
export function problemsOf(message) {
  const at = message.indexOf('invalid config: ');
  if (at < 0) return [{path: '', message}];
  return message.slice(at + 'invalid config: '.length).split('; ').map((p) => {
    const m = /^([a-z_]+(?:\[\d+\])?(?:\.[a-z_]+(?:\[\d+\])?)*): (.*)$/s.exec(p);
    return m ? {path: m[1], message: m[2]} : {path: '', message: p};
  });
}

/** lineOfPosition turns a character offset into a 1-based line. */
function lineOfPosition(text, pos) {
  return text.slice(0, pos).split('\n').length;
}

/**
 * parseErrorLine finds the line a JSON.parse error names (Chromium says
 * "at position N" and often "(line L column C)"); 0 when it names none.
 * @param {string} text
 * @param {string} message
 */
export function parseErrorLine(text, message) {
  const l = /line (\d+) column \d+/.exec(message);
  if (l) return Number(l[1]);
  const p = /position (\d+)/.exec(message);
  return p ? lineOfPosition(text, Number(p[1])) : 0;
}

/** goToLine puts the caret at the start of line in a textarea and focuses it. */
function goToLine(ta, line) {
  const lines = ta.value.split('\n');
  let pos = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
  ta.focus();
  ta.setSelectionRange(pos, pos + (lines[line - 1] || '').length);
}

/** The tab, a RobotTab as robot.js describes it. */
export const configTab = {
  id: 'config',
  label: 'CONFIG',
  action: 'machine.view',
  render(ctx) {
    const status = h('p', {id: 'config-status', class: 'status', role: 'status', 'aria-live': 'polite'}, 'Loading the config…');
    const errors = h('ul', {id: 'config-errors', class: 'problems', role: 'alert'});
    const ta = h('textarea', {id: 'config-json', name: 'config', rows: '18', spellcheck: 'false', autocomplete: 'off',
      class: 'code', 'aria-describedby': 'config-help config-errors'});
    const frags = h('input', {id: 'config-fragments', name: 'fragments', autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'config-fragments-help'});
    const save = h('button', {type: 'submit', id: 'config-save', disabled: true}, 'Save as a new revision');
    const attached = h('div', {id: 'config-attached'});
    const form = h('form', {id: 'config-form', class: 'card', 'aria-labelledby': 'config-title'},
      h('h3', {id: 'config-title'}, 'The machine’s own config'),
      h('div', {class: 'field'},
        h('label', {for: 'config-json'}, 'Config (JSON)'),
        h('p', {id: 'config-help', class: 'hint'}, 'The parts receive the fragments below merged with this. Saving checks it with the daemon’s validator and makes a revision.'),
        ta),
      errors,
      h('div', {class: 'field'},
        h('label', {for: 'config-fragments'}, 'Fragments (IDs, separated by commas)'),
        h('p', {id: 'config-fragments-help', class: 'hint'}, 'Fragments merge in ID order before the machine’s own config; on a name collision the machine’s wins.'),
        frags),
      h('div', {class: 'actions'}, save),
      status);
    let base = 0;

    function showProblems(list, text) {
      ta.setAttribute('aria-invalid', list.length ? 'true' : 'false');
      replace(errors, list.map((p) => {
        const line = p.line ?? (p.path ? jsonPathLine(text, p.path) : 0);
        return h('li', {'data-line': line || null, 'data-path': p.path || null},
          line ? h('button', {type: 'button', class: 'link', onclick: () => goToLine(ta, line)}, `Line ${line}`) : null,
          line ? ': ' : null,
          p.path ? h('code', null, p.path) : null, p.path ? ': ' : null, p.message);
      }));
    }

    async function load() {
      const resp = await ctx.client.unary(CONFIG, 'GetMachineConfig', {machineId: ctx.machine.id}, {signal: ctx.signal});
      const rev = resp.revision || {};
      base = Number(rev.revision || 0);
      ta.value = pretty(rev.config);
      frags.value = (rev.fragmentIds || []).join(', ');
      save.disabled = false;
      replace(status, base ? `Revision ${base}, by ${rev.author || 'unknown'}${rev.createdAt ? ' at ' + rev.createdAt : ''}.` : 'No revision yet: saving makes revision 1.');
      const versions = resp.fragments || [];
      replace(attached, versions.length === 0 ? h('p', {class: 'hint'}, 'No fragments attached.') : h('ul', {class: 'fragments'},
        versions.map((f) => {
          const li = h('li', {'data-fragment': f.fragmentId || f.id}, h('code', null, f.fragmentId || f.id), ` revision ${f.revision || '?'}`);
          ctx.client.unary(FRAGMENT, 'GetFragment', {fragmentId: f.fragmentId || f.id}, {signal: ctx.signal}).then((g) => {
            li.append(' — ', g.fragment.name, h('details', null, h('summary', null, 'Its config'), h('pre', {class: 'code'}, pretty(g.fragment.config))));
          }, (err) => li.append(' — ', h('span', {class: 'error'}, err.message)));
          return li;
        })));
    }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const text = ta.value;
      let config;
      try {
        config = JSON.parse(text);
      } catch (err) {
        showProblems([{path: '', line: parseErrorLine(text, err.message), message: `not JSON: ${err.message}`}], text);
        status.className = 'status error';
        replace(status, 'Not saved: the config is not JSON.');
        return;
      }
      const fragmentIds = frags.value.split(/[\s,]+/).filter(Boolean);
      save.disabled = true;
      status.className = 'status';
      replace(status, 'Saving…');
      try {
        const resp = await ctx.client.unary(CONFIG, 'UpdateMachineConfig', {machineId: ctx.machine.id, baseRevision: String(base), config, fragmentIds});
        showProblems([], text);
        base = Number(resp.revision.revision);
        replace(status, `Saved as revision ${base}. The parts apply it at their next sync.`);
      } catch (err) {
        showProblems(problemsOf(err.message), text);
        status.className = 'status error';
        replace(status, 'Not saved: the cloud refused it (each problem is listed above, at its line).');
      } finally {
        save.disabled = false;
      }
    });

    const panel = h('div', {id: 'config'}, form, h('section', {class: 'card', 'aria-labelledby': 'attached-title'},
      h('h3', {id: 'attached-title'}, 'Attached fragments'), attached));
    load().catch((err) => {
      if (ctx.signal.aborted) return;
      status.className = 'status error';
      status.setAttribute('role', 'alert');
      replace(status, err.message);
      form.replaceWith(status);
    });
    return panel;
  },
};

/** The tab, a RobotTab as robot.js describes it. */
export const historyTab = {
  id: 'history',
  label: 'HISTORY',
  action: 'machine.view',
  render(ctx) {
    const status = h('p', {id: 'history-status', class: 'status', role: 'status', 'aria-live': 'polite'}, 'Loading the revisions…');
    const from = h('select', {id: 'history-from', name: 'from'});
    const to = h('select', {id: 'history-to', name: 'to'});
    const diff = h('div', {id: 'history-diff', class: 'diff', 'aria-live': 'polite'});
    const tbody = h('tbody');
    const list = h('table', {id: 'history-list', class: 'list'},
      h('caption', {class: 'visually-hidden'}, 'Revisions, newest first'),
      h('thead', null, h('tr', null, ['Revision', 'Author', 'When', 'Fragments', ''].map((c) => h('th', {scope: 'col'}, c)))),
      tbody);
    let revs = [];

    function showDiff() {
      const a = revs.find((r) => r.revision === from.value);
      const b = revs.find((r) => r.revision === to.value);
      if (!a || !b) return;
      const text = (r) => pretty({config: r.config || {}, fragmentIds: r.fragmentIds || []});
      const lines = diffLines(text(a), text(b));
      const changed = lines.filter((l) => l.op !== ' ').length;
      replace(diff,
        h('p', {class: 'hint', id: 'history-diff-summary'}, changed === 0 ? `Revisions ${a.revision} and ${b.revision} are the same.` :
          `${lines.filter((l) => l.op === '-').length} lines only in revision ${a.revision}, ${lines.filter((l) => l.op === '+').length} only in revision ${b.revision}.`),
        h('pre', {class: 'code diff-lines'}, lines.map((l) => h('span', {class: l.op === '+' ? 'add' : l.op === '-' ? 'del' : 'same'},
          h('span', {class: 'visually-hidden'}, l.op === '+' ? 'added: ' : l.op === '-' ? 'removed: ' : ''),
          `${l.op} ${l.text}\n`))));
    }

    async function restore(r, button) {
      button.disabled = true;
      status.className = 'status';
      replace(status, `Restoring revision ${r.revision}…`);
      try {
        const newest = revs[0];
        const resp = await ctx.client.unary(CONFIG, 'UpdateMachineConfig', {machineId: ctx.machine.id, baseRevision: newest.revision,
          config: r.config || {}, fragmentIds: r.fragmentIds || []});
        await load();
        replace(status, `Revision ${r.revision} restored as revision ${resp.revision.revision}.`);
      } catch (err) {
        status.className = 'status error';
        status.setAttribute('role', 'alert');
        replace(status, err.message);
        button.disabled = false;
      }
    }

    async function load() {
      const resp = await ctx.client.unary(CONFIG, 'ListConfigRevisions', {machineId: ctx.machine.id}, {signal: ctx.signal});
      revs = (resp.revisions || []).map((r) => ({...r, revision: String(r.revision)}));
      if (revs.length === 0) {
        replace(status, 'No revisions yet.');
        return;
      }
      replace(status, `${revs.length} revision${revs.length === 1 ? '' : 's'}.`);
      const opts = () => revs.map((r) => h('option', {value: r.revision}, `Revision ${r.revision}`));
      replace(from, opts());
      replace(to, opts());
      from.value = revs[Math.min(1, revs.length - 1)].revision;
      to.value = revs[0].revision;
      replace(tbody, revs.map((r, i) => {
        const b = h('button', {type: 'button', class: 'secondary', 'data-restore': r.revision}, `Restore revision ${r.revision}`);
        b.addEventListener('click', () => restore(r, b));
        return h('tr', {'data-revision': r.revision},
          h('td', {'data-label': 'Revision'}, r.revision, i === 0 ? ' (current)' : ''),
          h('td', {'data-label': 'Author'}, r.author || '—'),
          h('td', {'data-label': 'When'}, r.createdAt || '—'),
          h('td', {'data-label': 'Fragments'}, (r.fragmentIds || []).join(', ') || 'none'),
          h('td', {'data-label': ''}, i === 0 ? '' : b));
      }));
      showDiff();
    }

    from.addEventListener('change', showDiff);
    to.addEventListener('change', showDiff);
    load().catch((err) => {
      if (ctx.signal.aborted) return;
      status.className = 'status error';
      status.setAttribute('role', 'alert');
      replace(status, err.message);
    });
    return h('div', {id: 'history'}, status,
      h('div', {class: 'table-wrap'}, list),
      h('section', {class: 'card', 'aria-labelledby': 'diff-title'},
        h('h3', {id: 'diff-title'}, 'Compare two revisions'),
        h('div', {class: 'pair'},
          h('div', {class: 'field'}, h('label', {for: 'history-from'}, 'From'), from),
          h('div', {class: 'field'}, h('label', {for: 'history-to'}, 'To'), to)),
        diff));
  },
};
