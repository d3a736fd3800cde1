// The robot page's SETUP tab: the machine's parts, adding a part, each
// part's bootstrap file as a download (BootstrapPart gives the part a new
// secret: the file is made in the page and offered through a Blob URL,
// never stored), and the steps to install the .deb on a Raspberry Pi or a
// Jetson (arm64). Seed 000: an operator does not see SETUP; the tab's
// action is machine.view ("See all tabs"), and every call in it is decided
// by the server (adding a part is part.create, a bootstrap file
// machine.config.edit).

import {h, replace} from './dom.js';
import {SVC, confirmButton, download, field, run, statusLine, table, time, when, checker, whoAmI} from './ui.js';

/** machineOf accepts GetMachine's response or the machine itself. */
export function machineOf(m) {
  return m && m.machine ? m.machine : m;
}

/** cloudURLOf is the cloud's URL as this page reaches it, without a trailing slash. */
export function cloudURLOf(cfg) {
  const base = (cfg && cfg.basePath) || '/';
  return location.origin + base.replace(/\/+$/, '');
}

/** fileNameOf is the bootstrap file's download name for a part. */
export function fileNameOf(part) {
  const safe = String(part.name || part.id).replace(/[^A-Za-z0-9_.-]+/g, '-').replace(/^[.-]+/, '').slice(0, 60) || 'part';
  return `outpostd-${safe}.json`;
}

/** installSteps are the commands that install a part on arm64 Debian. */
export function installSteps(file) {
  return [
    ['Check the board runs a 64-bit OS (Raspberry Pi OS 64-bit on a Pi 3 or newer, JetPack on a Jetson); this prints arm64:', 'dpkg --print-architecture'],
    ['Copy the package and the bootstrap file to it:', `scp outpost_*_arm64.deb ${file} pi@ROBOT:`],
    ['On the robot, install the package:', 'sudo apt install ./outpost_*_arm64.deb'],
    ['Install the bootstrap file, readable by the daemon only, and delete the copy:', `sudo install -m 0640 -g outpost ${file} /etc/outpost/outpostd.json && rm ${file}`],
    ['Start the daemon, and check it:', 'sudo systemctl start outpostd && sudo outpost doctor'],
  ];
}

export const setupTab = {
  id: 'setup',
  label: 'SETUP',
  action: 'machine.view',
  /**
   * @param {{client: any, cfg: any, machine: any, orgId: string, navigate: (path: string) => void}} ctx
   * @returns {HTMLElement}
   */
  render(ctx) {
    const {client} = ctx;
    let machine = machineOf(ctx.machine);
    const can = checker(client, whoAmI(client));
    const status = statusLine('setup-status');
    const parts = h('div', {id: 'setup-parts'});
    const file = h('div', {id: 'setup-file', 'aria-live': 'polite'});
    const cloudURL = h('input', {type: 'url', autocomplete: 'off', spellcheck: 'false', value: cloudURLOf(ctx.cfg)});
    const steps = h('ol', {id: 'setup-steps'});
    let link = null;

    function showSteps(name) {
      replace(steps, installSteps(name).map(([what, cmd]) => h('li', null, what, h('pre', null, h('code', null, cmd)))));
    }

    async function bootstrap(part) {
      const r = await run(null, status, () => client.unary(SVC.machine, 'BootstrapPart', {partId: part.id, cloudUrl: cloudURL.value.trim()}));
      if (!r) return;
      if (link) link.forget();
      const name = fileNameOf(part);
      link = download('setup-download', name, JSON.stringify(r.bootstrap, null, 2) + '\n', 'application/json');
      status.ok(`Part ${part.name} has a new secret; its previous one no longer works. Install the file below on it.`);
      replace(file, h('p', null, link, ' — it holds the part’s secret: keep it off shared folders and delete it once installed.'));
      showSteps(name);
      link.click();
    }

    function renderParts() {
      const ps = machine.parts || [];
      replace(parts, table('setup-parts-list', 'Parts', ['Part', 'ID', 'Main', 'Secret set', 'Bootstrap file'],
        ps.map((p) => [p.name, h('code', null, p.id), p.main ? 'main' : '', time(p.secretRotatedAt),
          when(can('machine.config.edit', `part/${p.id}`), confirmButton({
            id: `bootstrap-${p.id}`, label: 'Download bootstrap file', yes: 'Replace the secret and download', danger: false,
            question: `The file gives ${p.name} a new secret: a running part stops syncing until it gets the new file.`,
            onConfirm: () => bootstrap(p),
          }))]),
        (i) => ({'data-part': ps[i].id})));
    }

    const name = h('input', {type: 'text', required: true, autocomplete: 'off', maxlength: '100'});
    const add = h('button', {type: 'submit', id: 'setup-add'}, 'Add part');
    const form = when(can('part.create', `machine/${machine.id}`), h('form', {class: 'card', id: 'setup-add-form', 'aria-labelledby': 'setup-add-title'},
      h('h3', {id: 'setup-add-title'}, 'Add a part'),
      field('setup-part-name', 'Name', name, 'unique in this machine, such as "arm-controller"'),
      h('div', {class: 'actions'}, add)));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const r = await run(add, status, () => client.unary(SVC.machine, 'AddPart', {machineId: machine.id, name: name.value}));
      if (!r) return;
      name.value = '';
      try {
        machine = machineOf(await client.unary(SVC.machine, 'GetMachine', {machineId: machine.id}));
      } catch (err) {
        status.fail(err);
        return;
      }
      renderParts();
      status.ok(`Added part ${r.part.name}. Download its bootstrap file to install it.`);
      const b = document.getElementById(`bootstrap-${r.part.id}`);
      if (b) b.focus();
    });

    renderParts();
    showSteps(fileNameOf((machine.parts || [])[0] || {name: 'part'}));
    return h('section', {id: 'panel-setup', 'aria-labelledby': 'setup-title'},
      h('h2', {id: 'setup-title'}, 'Setup'),
      status,
      h('h3', null, 'Parts'),
      parts,
      field('setup-cloud-url', 'Cloud URL, as the part reaches it', cloudURL, 'written into the bootstrap file'),
      file,
      form,
      h('h3', null, 'Install on a Raspberry Pi or a Jetson (arm64)'),
      steps);
  },
};
