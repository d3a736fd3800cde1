// An organization's fragments: config pieces machines reference. Create
// one, edit its config as JSON (a new revision; the cloud refuses an edit
// from an old revision or one that would give any machine using it a
// config its daemon could not apply, and says why), delete one no machine
// uses.

import {h, replace} from './dom.js';
import {SVC, confirmButton, field, run, statusLine, table, time, when} from './ui.js';

/**
 * parseConfig reads a config typed as JSON: an object, or an Error saying
 * where it does not parse.
 * @param {string} text
 */
export function parseConfig(text) {
  let v;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new Error(`the config is not JSON: ${err.message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('the config must be a JSON object, such as {"components": []}');
  return v;
}

/** @param {any} ctx the org page's context */
export function fragmentsPage(ctx) {
  const {client, orgId, can} = ctx;
  const status = statusLine('fragments-status');
  const list = h('div', {id: 'fragments'});
  const editor = h('div', {id: 'fragment-editor'});

  async function load() {
    let r;
    try {
      r = await client.unary(SVC.fragment, 'ListFragments', {orgId});
    } catch (err) {
      status.fail(err);
      replace(list);
      return;
    }
    const fs = r.fragments || [];
    replace(list, fs.length ? table('fragments-list', 'Fragments', ['Name', 'ID', 'Revision', 'Updated', 'Open'],
      fs.map((f) => {
        const open = h('button', {type: 'button', class: 'secondary', id: `open-${f.id}`}, 'Open');
        open.addEventListener('click', () => edit(f.id));
        return [f.name, h('code', null, f.id), String(f.revision), [time(f.updatedAt), f.updatedBy ? ` by ${f.updatedBy}` : ''], open];
      }), (i) => ({'data-fragment': fs[i].id})) : h('p', null, 'No fragments.'));
  }

  async function edit(id) {
    let f;
    try {
      f = (await client.unary(SVC.fragment, 'GetFragment', {fragmentId: id})).fragment;
    } catch (err) {
      status.fail(err);
      return;
    }
    const text = h('textarea', {rows: '14', spellcheck: 'false', class: 'code'});
    text.value = JSON.stringify(f.config || {}, null, 2);
    const save = h('button', {type: 'submit', id: 'fragment-save'}, 'Save revision');
    const form = h('form', {class: 'card', id: 'fragment-form', 'data-fragment': f.id, 'aria-labelledby': 'fragment-title'},
      h('h2', {id: 'fragment-title'}, `${f.name} `, h('span', {class: 'muted'}, `revision ${f.revision}`)),
      field('fragment-config', 'Config (JSON)', text),
      h('div', {class: 'actions'},
        when(can('fragment.edit', `org/${orgId}`), save),
        when(can('fragment.edit', `org/${orgId}`), confirmButton({
          id: 'fragment-delete', label: 'Delete fragment', yes: 'Delete', question: `Delete ${f.name}?`,
          onConfirm: async () => {
            const r = await run(null, status, () => client.unary(SVC.fragment, 'DeleteFragment', {fragmentId: f.id}));
            if (r) { status.ok(`Deleted ${f.name}.`); replace(editor); load(); }
          },
        }))));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const r = await run(save, status, async () => client.unary(SVC.fragment, 'UpdateFragment', {fragmentId: f.id, baseRevision: f.revision, config: parseConfig(text.value)}));
      if (r) {
        status.ok(`Saved ${r.fragment.name} as revision ${r.fragment.revision}; ${r.machines || 0} machines use it.`);
        edit(f.id);
        load();
      }
    });
    replace(editor, form);
    text.focus();
  }

  const name = h('input', {type: 'text', required: true, autocomplete: 'off', maxlength: '100'});
  const config = h('textarea', {rows: '6', spellcheck: 'false', class: 'code'});
  config.value = '{}';
  const create = h('button', {type: 'submit', id: 'fragment-create'}, 'Create fragment');
  const form = when(can('fragment.create', `org/${orgId}`), h('form', {class: 'card', id: 'fragment-new', 'aria-labelledby': 'fragment-new-title'},
    h('h2', {id: 'fragment-new-title'}, 'New fragment'),
    field('fragment-name', 'Name', name),
    field('fragment-new-config', 'Config (JSON)', config),
    h('div', {class: 'actions'}, create)));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const r = await run(create, status, async () => client.unary(SVC.fragment, 'CreateFragment', {orgId, name: name.value, config: parseConfig(config.value)}));
    if (r) {
      status.ok(`Created ${r.fragment.name}.`);
      name.value = '';
      config.value = '{}';
      load();
    }
  });
  load();
  return h('div', null, status, list, editor, form);
}
