// The robot page's SECURITY tab: each part's certificate fingerprint (as
// the part last reported it, to compare before trusting it on the LAN with
// `outpost robot trust` or the part's own console), rotating a part's
// secret (after a confirmation; the new secret is shown once), and the API
// keys holding a role on this machine. Seed 000: an operator does not see
// SECURITY; the tab's action is machine.view ("See all tabs"), and the
// server decides each call (rotating is machine.config.edit, keys are
// role.view.others and role.change).

import {h, replace} from './dom.js';
import {SVC, checker, confirmButton, run, secretBox, statusLine, table, time, when, whoAmI} from './ui.js';
import {keyList} from './org_apikeys.js';
import {machineOf} from './tab_setup.js';

/**
 * fingerprintOf turns the part's reported control_cert_sha256 (protobuf
 * JSON bytes: standard or URL-safe base64) into lower-case hex, as
 * `outpost robot trust` and the console show it; '' when absent or not 32
 * bytes.
 * @param {string} b64
 */
export function fingerprintOf(b64) {
  if (!b64) return '';
  let bin;
  try {
    bin = atob(String(b64).replace(/-/g, '+').replace(/_/g, '/'));
  } catch {
    return '';
  }
  if (bin.length !== 32) return '';
  return Array.from(bin, (c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');
}

export const securityTab = {
  id: 'security',
  label: 'SECURITY',
  action: 'machine.view',
  /**
   * @param {{client: any, cfg: any, machine: any, orgId: string, navigate: (path: string) => void}} ctx
   * @returns {HTMLElement}
   */
  render(ctx) {
    const {client, orgId} = ctx;
    const machine = machineOf(ctx.machine);
    const can = checker(client, whoAmI(client));
    const status = statusLine('security-status');
    const parts = h('div', {id: 'security-parts'});
    const secret = h('div', {id: 'security-secret'});

    async function load() {
      let st = {parts: []};
      try {
        st = await client.unary(SVC.machine, 'GetMachineStatus', {machineId: machine.id});
      } catch (err) {
        status.fail(err);
      }
      const byPart = new Map((st.parts || []).map((p) => [p.part && p.part.id, p]));
      const ps = machine.parts || [];
      replace(parts, table('security-parts-list', 'Parts', ['Part', 'Certificate fingerprint (SHA-256)', 'Secret set', 'Rotate'],
        ps.map((p) => {
          const s = byPart.get(p.id);
          const fp = fingerprintOf(s && s.status && s.status.controlCertSha256);
          return [p.name, fp ? h('code', {class: 'fp', 'data-fingerprint': p.id}, fp) : h('span', {'data-fingerprint': p.id}, 'not reported yet'),
            time((s && s.part && s.part.secretRotatedAt) || p.secretRotatedAt),
            when(can('machine.config.edit', `part/${p.id}`), confirmButton({
              id: `rotate-${p.id}`, label: 'Rotate secret', yes: 'Rotate now',
              question: `Rotate ${p.name}'s secret? Its current secret stops working at once: the part stops syncing until its bootstrap file holds the new one.`,
              onConfirm: async () => {
                const r = await run(null, status, () => client.unary(SVC.machine, 'RotatePartSecret', {partId: p.id}));
                if (r) {
                  status.ok(`Rotated ${p.name}'s secret.`);
                  replace(secret, secretBox('security-new-secret', `${p.name}'s new secret`, r.secret),
                    h('p', null, 'Put it in the part’s /etc/outpost/outpostd.json as part_secret and run sudo systemctl reload outpostd, or download a whole new bootstrap file from SETUP.'));
                }
              },
            }))];
        }), (i) => ({'data-part': ps[i].id})));
    }

    const scope = `machine/${machine.id}`;
    const keys = keyList({client, orgId, can}, {
      prefix: 'security-keys', caption: `API keys on ${scope}`, fixedScope: scope,
      filter: (k) => (k.grants || []).some((g) => g.scope === scope) || k.scope === scope,
    });
    load();
    return h('section', {id: 'panel-security', 'aria-labelledby': 'security-title'},
      h('h2', {id: 'security-title'}, 'Security'),
      status,
      h('h3', null, 'Parts'),
      h('p', null, 'Compare a part’s fingerprint with what `outpost robot trust HOST:PORT` or the part’s own console shows before you trust it.'),
      parts,
      secret,
      h('h3', null, 'API keys on this machine'),
      keys);
  },
};
