// The DATA tab: the machine's captures as the cloud holds them
// (DataService.ListCaptures, data.view; the tab itself is listed, like
// every tab but CONTROL, to those who may see all tabs: machine.view), images as thumbnails (inline, or
// read with ReadBlob), their tags, deleting (data.edit: owners; the server
// decides and the page shows its refusal) and exporting (data.export) to a
// JSON Lines file.

import {h, replace} from './dom.js';

const DATA = 'outpost.fleet.v1.DataService';

/** Captures per page. */
export const PAGE = 24;

/** The largest blob read for a thumbnail. */
const THUMB_MAX = 4 << 20;

/** bytesOf decodes protobuf JSON bytes (standard base64, as protojson writes them). */
export function bytesOf(b64) {
  return Uint8Array.from(atob(b64 || ''), (c) => c.charCodeAt(0));
}

/** refOf names a capture for TagCaptures and DeleteCaptures. */
function refOf(c) {
  return {partId: c.partId, storeId: c.storeId, seq: c.seq};
}

/** The tab, a RobotTab as robot.js describes it. */
export const dataTab = {
  id: 'data',
  label: 'DATA',
  // A tab of the machine's page, shown to whoever may "see all tabs"; its
  // calls are decided by data.view, data.edit and data.export.
  action: 'machine.view',
  render(ctx) {
    const mid = ctx.machine.id;
    const component = h('input', {id: 'data-component', name: 'component', autocomplete: 'off', spellcheck: 'false'});
    const tag = h('input', {id: 'data-tag', name: 'tag', autocomplete: 'off', spellcheck: 'false'});
    const status = h('p', {id: 'data-status', class: 'status', role: 'status', 'aria-live': 'polite'}, 'Loading captures…');
    const grid = h('ul', {id: 'data-list', class: 'captures'});
    const more = h('button', {type: 'button', id: 'data-more', class: 'secondary', hidden: true}, 'More');
    const exportBtn = h('button', {type: 'button', id: 'data-export', class: 'secondary'}, 'Export (JSON Lines)');
    const urls = [];
    let token = '';
    let gen = 0;

    const say = (text, error) => {
      status.className = error ? 'status error' : 'status';
      status.setAttribute('role', error ? 'alert' : 'status');
      replace(status, text);
    };

    async function thumb(c, img) {
      const cap = c.capture || {};
      let bytes;
      if (cap.blobId) {
        const b = await ctx.client.unary(DATA, 'ReadBlob', {machineId: mid, partId: c.partId, blobId: cap.blobId, length: THUMB_MAX}, {signal: ctx.signal});
        bytes = bytesOf(b.data);
      } else {
        bytes = bytesOf(cap.data);
      }
      const url = URL.createObjectURL(new Blob([bytes], {type: cap.mimeType}));
      urls.push(url);
      img.src = url;
    }

    function item(c) {
      const cap = c.capture || {};
      const key = `${c.partId}|${c.storeId}|${c.seq}`;
      const isImage = (cap.mimeType || '').startsWith('image/');
      const tags = h('span', {class: 'tags'});
      const showTags = (list) => replace(tags, list.length ? list.map((t) => h('span', {class: 'tag'}, t)) : h('span', {class: 'hint'}, 'no tags'));
      let current = cap.tags || [];
      showTags(current);
      const tagInput = h('input', {'aria-label': `Tag to add to capture ${c.seq}`, class: 'tag-input', 'data-tag-input': key, autocomplete: 'off'});
      const add = h('button', {type: 'button', class: 'secondary', 'data-tag-add': key}, 'Add tag');
      const del = h('button', {type: 'button', class: 'danger', 'data-delete': key}, 'Delete');
      const line = h('p', {class: 'status', 'aria-live': 'polite'});
      add.addEventListener('click', async () => {
        const t = tagInput.value.trim();
        if (!t) return;
        add.disabled = true;
        try {
          await ctx.client.unary(DATA, 'TagCaptures', {machineId: mid, captures: [refOf(c)], add: [t]});
          current = [...new Set([...current, t])];
          showTags(current);
          tagInput.value = '';
          replace(line);
        } catch (err) {
          line.className = 'status error';
          line.setAttribute('role', 'alert');
          replace(line, err.message);
        } finally {
          add.disabled = false;
        }
      });
      const li = h('li', {class: 'card capture', 'data-capture': key},
        isImage ? h('img', {class: 'thumb', alt: `${cap.component} ${cap.method} at ${c.time}`, loading: 'lazy'}) :
          h('pre', {class: 'code small'}, new TextDecoder().decode(bytesOf(cap.data)).slice(0, 300) || (cap.blobId ? `blob ${cap.blobId}` : '')),
        h('p', null, h('strong', null, cap.component), ` · ${cap.method} · `, h('time', {datetime: c.time}, c.time)),
        tags,
        h('div', {class: 'actions'}, tagInput, add, del),
        line);
      del.addEventListener('click', async () => {
        del.disabled = true;
        try {
          await ctx.client.unary(DATA, 'DeleteCaptures', {machineId: mid, captures: [refOf(c)]});
          li.remove();
          say(`Deleted capture ${c.seq} of ${cap.component}.`);
        } catch (err) {
          line.className = 'status error';
          line.setAttribute('role', 'alert');
          replace(line, err.message);
          del.disabled = false;
        }
      });
      if (isImage) {
        thumb(c, li.querySelector('img')).catch((err) => {
          if (!ctx.signal.aborted) replace(line, h('span', {class: 'error'}, err.message));
        });
      }
      return li;
    }

    async function load(reset) {
      const my = reset ? ++gen : gen;
      if (reset) {
        token = '';
        replace(grid);
      }
      const resp = await ctx.client.unary(DATA, 'ListCaptures', {machineId: mid, component: component.value.trim(), tag: tag.value.trim(),
        pageSize: PAGE, pageToken: token}, {signal: ctx.signal});
      if (my !== gen) return;
      const caps = resp.captures || [];
      for (const c of caps) grid.append(item(c));
      token = resp.nextPageToken || '';
      more.hidden = !token;
      const n = grid.children.length;
      say(n ? `${n} capture${n === 1 ? '' : 's'}${token ? ', more to load' : ''}.` : 'No captures match.');
    }

    async function exportAll() {
      exportBtn.disabled = true;
      say('Exporting…');
      try {
        const lines = [];
        let tok = '';
        do {
          const resp = await ctx.client.unary(DATA, 'ExportCaptures', {machineId: mid, component: component.value.trim(), tag: tag.value.trim(),
            pageSize: 1000, pageToken: tok}, {signal: ctx.signal});
          for (const c of resp.captures || []) lines.push(JSON.stringify(c));
          tok = resp.nextPageToken || '';
        } while (tok);
        const url = URL.createObjectURL(new Blob([lines.join('\n') + (lines.length ? '\n' : '')], {type: 'application/x-ndjson'}));
        urls.push(url);
        const a = h('a', {href: url, download: `${ctx.machine.name || mid}-captures.jsonl`, id: 'data-download'}, `Download ${lines.length} captures`);
        say('');
        replace(status, `Exported ${lines.length} capture${lines.length === 1 ? '' : 's'}: `, a);
        a.focus();
      } catch (err) {
        say(err.message, true);
      } finally {
        exportBtn.disabled = false;
      }
    }

    const fail = (err) => { if (!ctx.signal.aborted) say(err.message, true); };
    const filters = h('form', {class: 'filters', 'aria-label': 'Which captures', onsubmit: (ev) => {
      ev.preventDefault();
      load(true).catch(fail);
    }},
    h('div', {class: 'field'}, h('label', {for: 'data-component'}, 'Component'), component),
    h('div', {class: 'field'}, h('label', {for: 'data-tag'}, 'Tag'), tag),
    h('div', {class: 'actions'}, h('button', {type: 'submit', id: 'data-filter'}, 'Show'), exportBtn));
    more.addEventListener('click', () => load(false).catch(fail));
    exportBtn.addEventListener('click', exportAll);
    ctx.signal.addEventListener('abort', () => { for (const u of urls) URL.revokeObjectURL(u); }, {once: true});
    load(true).catch(fail);
    return h('div', {id: 'data'}, filters, status, grid, more);
  },
};
