// The CONTROL page's component cards: one card per component, with the
// controls of its type (a motor's power and stop, a sensor's readings, a
// camera's image, any component's DoCommand). They take a call function,
// call(service, method, request) → Promise<response>, and know nothing of
// the transport: the part's console passes its HTTPS client, the fleet app
// a WebRTC session to the part. Every call is decided by the part; a
// refusal is shown as the part wrote it.

import {h, replace} from './dom.js';

/** The part's component service. */
export const COMPONENTS = 'outpost.control.v1.ComponentService';

/**
 * @typedef {(service: string, method: string, request: object) => Promise<any>} Call
 */

/** A line that shows a call's outcome, or its refusal, as text. */
function outcome(id) {
  return h('p', {class: 'status', id, role: 'status', 'aria-live': 'polite'});
}

/**
 * run calls fn and shows what came of it in line; the button is disabled
 * meanwhile.
 */
async function run(line, button, fn) {
  button.disabled = true;
  line.className = 'status';
  replace(line, '…');
  try {
    replace(line, await fn());
  } catch (err) {
    line.className = 'status error';
    replace(line, err && err.message ? err.message : String(err));
  } finally {
    button.disabled = false;
  }
}

/** safe makes a component name usable in an element id. */
function safe(name) {
  return String(name).replace(/[^A-Za-z0-9_-]/g, '_');
}

function motorControls(call, name) {
  const id = safe(name);
  const power = h('input', {id: `motor-${id}-power`, type: 'number', min: '-1', max: '1', step: '0.05', value: '0.5'});
  const set = h('button', {type: 'button', id: `motor-${id}-set`}, 'Set power');
  const stop = h('button', {type: 'button', id: `motor-${id}-stop`, class: 'secondary'}, 'Stop');
  const state = h('button', {type: 'button', id: `motor-${id}-state`, class: 'secondary'}, 'Read state');
  const line = outcome(`motor-${id}-status`);
  set.addEventListener('click', () => run(line, set, async () => {
    const p = Number(power.value);
    await call(COMPONENTS, 'MotorSetPower', {name, power: p});
    return `Power set to ${p}.`;
  }));
  stop.addEventListener('click', () => run(line, stop, async () => {
    await call(COMPONENTS, 'Stop', {name});
    return 'Stopped.';
  }));
  state.addEventListener('click', () => run(line, state, async () => {
    const st = await call(COMPONENTS, 'GetStatus', {name});
    return JSON.stringify(st.status || {});
  }));
  return [h('div', {class: 'field'}, h('label', {for: power.id}, 'Power (−1 to 1)'), power), h('div', {class: 'actions'}, set, stop, state), line];
}

function sensorControls(call, name) {
  const id = safe(name);
  const read = h('button', {type: 'button', id: `sensor-${id}-read`}, 'Read');
  const line = outcome(`sensor-${id}-status`);
  read.addEventListener('click', () => run(line, read, async () => {
    const r = await call(COMPONENTS, 'SensorReadings', {name});
    return JSON.stringify(r.readings || {});
  }));
  return [h('div', {class: 'actions'}, read), line];
}

function cameraControls(call, name) {
  const id = safe(name);
  const grab = h('button', {type: 'button', id: `camera-${id}-grab`}, 'Take image');
  const img = h('img', {id: `camera-${id}-image`, alt: `Latest image from ${name}`, hidden: true, class: 'camera'});
  const line = outcome(`camera-${id}-status`);
  grab.addEventListener('click', () => run(line, grab, async () => {
    const r = await call(COMPONENTS, 'CameraImage', {name});
    const type = /^image\/(jpeg|png|gif|webp)$/.test(r.mimeType || '') ? r.mimeType : 'image/jpeg';
    // The image arrives base64 in JSON: shown as a data: URL, which the
    // page's CSP allows for images only.
    img.src = `data:${type};base64,${String(r.image || '').replaceAll('-', '+').replaceAll('_', '/')}`;
    img.hidden = false;
    return `${type}, taken ${new Date().toLocaleTimeString()}`;
  }));
  return [h('div', {class: 'actions'}, grab), img, line];
}

function doCommandControls(call, name) {
  const id = safe(name);
  const cmd = h('textarea', {id: `do-${id}-command`, rows: '2', spellcheck: 'false'}, '{}');
  const send = h('button', {type: 'button', id: `do-${id}-send`, class: 'secondary'}, 'Send command');
  const line = outcome(`do-${id}-status`);
  send.addEventListener('click', () => run(line, send, async () => {
    let command;
    try {
      command = JSON.parse(cmd.value);
    } catch {
      throw new Error('the command is not JSON: write an object such as {"blink": true}');
    }
    if (!command || typeof command !== 'object' || Array.isArray(command)) throw new Error('the command must be a JSON object');
    const r = await call(COMPONENTS, 'DoCommand', {name, command});
    return JSON.stringify(r.result || {});
  }));
  return [h('details', null, h('summary', null, 'DoCommand'),
    h('div', {class: 'field'}, h('label', {for: cmd.id}, 'Command (JSON object)'), cmd), h('div', {class: 'actions'}, send), line)];
}

const TYPES = {
  COMPONENT_TYPE_MOTOR: ['motor', motorControls],
  COMPONENT_TYPE_SENSOR: ['sensor', sensorControls],
  COMPONENT_TYPE_CAMERA: ['camera', cameraControls],
  COMPONENT_TYPE_BASE: ['base', null],
  COMPONENT_TYPE_GENERIC: ['generic', null],
};

/**
 * componentCard returns one component's card.
 * @param {Call} call
 * @param {{name: string, componentType?: string, state?: string, error?: string}} res a ListResources entry
 */
export function componentCard(call, res) {
  const [label, controls] = TYPES[res.componentType] || ['component', null];
  const running = !res.state || res.state === 'RESOURCE_STATE_RUNNING';
  return h('section', {class: 'card component', 'data-component': res.name, 'aria-label': `${label} ${res.name}`},
    h('h2', null, res.name, ' ', h('span', {class: 'kind'}, label)),
    running ? null : h('p', {class: 'error'}, `${(res.state || '').replace('RESOURCE_STATE_', '').toLowerCase()}: ${res.error || ''}`),
    running && controls ? controls(call, res.name) : null,
    running ? doCommandControls(call, res.name) : null);
}

/**
 * componentCards lists the part's components and returns their cards.
 * @param {Call} call
 * @returns {Promise<HTMLElement>}
 */
export async function componentCards(call) {
  const r = await call(COMPONENTS, 'ListResources', {});
  const comps = (r.resources || []).filter((x) => x.kind === 'RESOURCE_KIND_COMPONENT');
  if (comps.length === 0) return h('p', {class: 'status'}, 'This part runs no components.');
  return h('div', {class: 'cards', id: 'component-cards'}, comps.map((c) => componentCard(call, c)));
}
