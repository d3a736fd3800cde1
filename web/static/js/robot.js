// The robot page: one machine, with a tab per job (CONTROL, CONFIG,
// HISTORY, LOGS, DATA; SETUP, SECURITY and CODE SAMPLE join the registry in
// the same shape). Which tabs are listed is the server's answer: the page
// asks AccessService.CheckAccess about each tab's action for the signed-in
// subject, and holds no role logic of its own. A tab opened by its URL
// without leave is still rendered: its own read call is refused by the
// server, and the refusal is shown as the server wrote it.

import {h, replace} from './dom.js';
import {controlTab} from './robot_control.js';
import {configTab, historyTab} from './robot_config.js';
import {logsTab} from './robot_logs.js';
import {dataTab} from './robot_data.js';
import {setupTab} from './tab_setup.js';
import {securityTab} from './tab_security.js';
import {codeTab} from './tab_code.js';

const AUTH = 'outpost.fleet.v1.AuthService';
const ACCESS = 'outpost.fleet.v1.AccessService';
const MACHINE = 'outpost.fleet.v1.MachineService';
const ORG = 'outpost.fleet.v1.OrgService';
const LOC = 'outpost.fleet.v1.LocationService';

/**
 * TabContext is what a tab's render gets.
 * @typedef {Object} TabContext
 * @property {{unary: Function, stream: Function}} client the cloud's Connect client (connect.js createClient)
 * @property {{app: string, basePath: string, title?: string, version?: string, syncIntervalSeconds?: number}} cfg the page's config (app.js readConfig)
 * @property {any} machine MachineService.GetMachine's machine, in protobuf JSON: {id, locationId, name, parts: [{id, name, main}]}
 * @property {string} orgId the organization the machine's location belongs to ('' when the caller may not list it)
 * @property {(path: string) => void} navigate goes to a path below cfg.basePath without reloading the page
 * @property {AbortSignal} signal aborted when the tab is left: stop polling, close sessions
 */

/**
 * RobotTab is one tab of the robot page.
 * @typedef {Object} RobotTab
 * @property {string} id its path segment: machines/{machineId}/{id}
 * @property {string} label what the tab list shows, such as 'CONFIG'
 * @property {string} action the docs/ACTIONS.md action the server checks to read it, such as 'machine.view'
 * @property {(ctx: TabContext) => HTMLElement} render builds the tab's panel and starts loading it
 */

/**
 * TABS is the registry, in the order the tab list shows them.
 * @type {RobotTab[]}
 */
export const TABS = [controlTab, setupTab, configTab, historyTab, logsTab, dataTab, codeTab, securityTab];

/**
 * robotPath returns the path of a machine's tab below basePath.
 * @param {string} machineId
 * @param {string} [tab]
 */
export function robotPath(machineId, tab) {
  return `machines/${encodeURIComponent(machineId)}${tab ? '/' + encodeURIComponent(tab) : ''}`;
}

/**
 * parseRobotPath reads a path below basePath: {machineId, tab} for
 * machines/{id} and machines/{id}/{tab} (tab 'control' by default), null
 * for anything else.
 * @param {string} rest
 * @returns {{machineId: string, tab: string}|null}
 */
export function parseRobotPath(rest) {
  const m = /^machines\/([^/]+)(?:\/([^/]*))?\/?$/.exec(rest);
  if (!m) return null;
  try {
    return {machineId: decodeURIComponent(m[1]), tab: m[2] ? decodeURIComponent(m[2]) : 'control'};
  } catch {
    return null;
  }
}

/**
 * alertOf shows a failure as the server wrote it, as text, announced at
 * once (role=alert).
 * @param {any} err
 * @param {string} [id]
 */
export function alertOf(err, id) {
  return h('p', {class: 'status error', role: 'alert', id}, err && err.message ? err.message : String(err));
}

/**
 * orgOfLocation finds the organization a location belongs to among those
 * the caller may list; '' when none says.
 */
async function orgOfLocation(client, locationId) {
  try {
    const orgs = (await client.unary(ORG, 'ListOrgs', {})).orgs || [];
    for (const o of orgs) {
      const locs = (await client.unary(LOC, 'ListLocations', {orgId: o.id})).locations || [];
      if (locs.some((l) => l.id === locationId)) return o.id;
    }
  } catch {
    // Not the caller's to list: the org is unknown to this page.
  }
  return '';
}

/**
 * allowedTabs asks the server, for each tab, whether the signed-in subject
 * may do its action on the machine. It returns {id: {allowed, explanation}}.
 * @param {{unary: Function}} client
 * @param {string} machineId
 * @param {RobotTab[]} tabs
 */
export async function allowedTabs(client, machineId, tabs) {
  const who = await client.unary(AUTH, 'WhoAmI', {});
  const actions = [...new Set(tabs.map((t) => t.action))];
  const answers = await Promise.all(actions.map((action) =>
    client.unary(ACCESS, 'CheckAccess', {subject: who.subject, action, resource: `machine/${machineId}`})
      .catch((err) => ({allowed: false, explanation: err.message}))));
  const byAction = new Map(actions.map((a, i) => [a, answers[i]]));
  return Object.fromEntries(tabs.map((t) => [t.id, {allowed: !!byAction.get(t.action).allowed, explanation: byAction.get(t.action).explanation || ''}]));
}

/**
 * robotPage returns the robot page for machineId, showing tab, and starts
 * loading it.
 * @param {{client: any, cfg: any, machineId: string, tab: string, navigate: (path: string) => void, signal: AbortSignal, tabs?: RobotTab[]}} opts
 * @returns {HTMLElement}
 */
export function robotPage(opts) {
  const tabs = opts.tabs || TABS;
  const title = h('h1', {id: 'robot-title'}, 'Machine');
  const state = h('span', {id: 'robot-state', class: 'badge off'}, '…');
  const status = h('p', {id: 'robot-status', class: 'status', role: 'status', 'aria-live': 'polite'}, 'Loading the machine…');
  const tablist = h('ul', {class: 'tabs', id: 'robot-tabs'});
  const panel = h('section', {id: 'robot-panel', class: 'panel', tabindex: '-1', 'aria-labelledby': 'robot-title'});
  const page = h('div', {id: 'robot', 'data-machine': opts.machineId},
    h('p', {class: 'crumbs'}, h('a', {href: opts.cfg.basePath, id: 'robot-back'}, '← Fleet')),
    h('div', {class: 'robot-head'}, title, state),
    status,
    h('nav', {'aria-label': 'Machine tabs'}, tablist),
    panel);

  (async () => {
    let machine;
    try {
      machine = (await opts.client.unary(MACHINE, 'GetMachine', {machineId: opts.machineId})).machine;
    } catch (err) {
      replace(status, alertOf(err, 'robot-error'));
      return;
    }
    if (opts.signal.aborted) return;
    replace(title, machine.name || machine.id);
    document.title = `${machine.name || machine.id} · ${opts.cfg.title || 'Outpost'}`;
    const [access, orgId] = await Promise.all([
      allowedTabs(opts.client, machine.id, tabs).catch(() => null),
      orgOfLocation(opts.client, machine.locationId),
    ]);
    if (opts.signal.aborted) return;
    machineState(opts, machine, state);
    const current = tabs.find((t) => t.id === opts.tab);
    // The tabs the server allows, and the one asked for by URL even if not
    // (its panel then shows the server's refusal).
    const shown = tabs.filter((t) => !access || access[t.id].allowed || t === current);
    replace(tablist, shown.map((t) => h('li', null, h('a', {
      href: opts.cfg.basePath + robotPath(machine.id, t.id),
      id: `tab-${t.id}`,
      'data-tab': t.id,
      'aria-current': t === current ? 'page' : null,
      onclick: (ev) => {
        if (ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
        ev.preventDefault();
        opts.navigate(robotPath(machine.id, t.id));
      },
    }, t.label))));
    replace(status);
    if (!current) {
      replace(panel, alertOf(`This machine has no tab “${opts.tab}”.`, 'robot-error'));
      return;
    }
    const ctx = {client: opts.client, cfg: opts.cfg, machine, orgId, navigate: opts.navigate, signal: opts.signal};
    let body;
    try {
      body = current.render(ctx);
    } catch (err) {
      body = alertOf(err);
    }
    replace(panel, h('h2', {class: 'visually-hidden'}, current.label), body);
  })();
  return page;
}

/** How often the page asks again whether the machine is online. */
export const STATE_MS = 5000;

/**
 * machineState shows whether the machine is online, from its parts' last
 * contact, and asks again every STATE_MS while the page is shown.
 */
async function machineState(opts, machine, badge) {
  if (opts.signal.aborted) return;
  setTimeout(() => machineState(opts, machine, badge), STATE_MS);
  try {
    const st = await opts.client.unary(MACHINE, 'GetMachineStatus', {machineId: machine.id});
    const seen = st.lastSeen ? Date.parse(st.lastSeen) : NaN;
    const window = 3 * (opts.cfg.syncIntervalSeconds || 15) * 1000;
    const online = !Number.isNaN(seen) && Date.now() - seen <= window;
    badge.className = `badge ${online ? 'ok' : 'off'}`;
    replace(badge, Number.isNaN(seen) ? 'never seen' : online ? 'online' : 'offline');
    if (!Number.isNaN(seen)) badge.title = `last seen ${new Date(seen).toISOString()}`;
  } catch (err) {
    replace(badge, err.message);
  }
}
