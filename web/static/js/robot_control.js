// The CONTROL tab: a WebRTC session with one part of the machine, signaled
// through the cloud's relay (which requires machine.control and vouches for
// the caller), and a card per component the part reports: motor, sensor,
// camera, base, and a DoCommand box on every one. Every call on the session
// is decided again by the part with its cached grants; a stop button is
// always on screen (sticky at a phone's width).

import {createClient} from './connect.js';
import {h, replace} from './dom.js';
import {BASE_URL, dialControl, relaySignaling} from './rtc.js';

const CONTROL = 'outpost.control.v1.ControlService';
const COMP = 'outpost.control.v1.ComponentService';

/** How often live cards refresh: sensors and motor status each second, cameras every two. */
export const SENSOR_MS = 1000;
export const CAMERA_MS = 2000;

/** How many readings a sensor's chart keeps. */
const CHART_POINTS = 60;

/**
 * chart draws a small line chart of values as an SVG: no script, no style
 * attribute, so it passes the page's CSP.
 * @param {number[]} values
 * @param {string} label what the values are, for screen readers
 * @returns {SVGElement}
 */
export function chart(values, label) {
  const ns = 'http://www.w3.org/2000/svg';
  const w = 240;
  const ht = 60;
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', `0 0 ${w} ${ht}`);
  svg.setAttribute('class', 'chart');
  svg.setAttribute('role', 'img');
  const last = values.length ? values[values.length - 1] : NaN;
  svg.setAttribute('aria-label', `${label}: ${values.length} readings, latest ${Number.isNaN(last) ? 'none' : last}`);
  if (values.length < 2) return svg;
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  // A steady reading is a line across the middle.
  const y = (v) => (hi === lo ? ht / 2 : ht - 4 - ((v - lo) / (hi - lo)) * (ht - 8));
  const pts = values.map((v, i) => `${((i / (CHART_POINTS - 1)) * w).toFixed(1)},${y(v).toFixed(1)}`);
  const line = document.createElementNS(ns, 'polyline');
  line.setAttribute('points', pts.join(' '));
  line.setAttribute('fill', 'none');
  line.setAttribute('class', 'chart-line');
  svg.append(line);
  return svg;
}

/** typeOf reads a resource's component type: 'motor', 'sensor', ... or ''. */
function typeOf(r) {
  const t = String(r.componentType || '');
  return t.startsWith('COMPONENT_TYPE_') ? t.slice('COMPONENT_TYPE_'.length).toLowerCase() : '';
}

/** every runs fn now and then every ms until stop() is true; fn's errors go to onErr. */
function every(ms, stop, fn, onErr) {
  const tick = async () => {
    if (stop()) return;
    try {
      await fn();
    } catch (err) {
      if (!stop()) onErr(err);
    }
    if (!stop()) setTimeout(tick, ms);
  };
  tick();
}

/** The tab, a RobotTab as robot.js describes it. */
export const controlTab = {
  id: 'control',
  label: 'CONTROL',
  action: 'machine.control',
  render(ctx) {
    const parts = ctx.machine.parts || [];
    const status = h('p', {id: 'control-status', class: 'status', role: 'status', 'aria-live': 'polite'});
    const cards = h('div', {id: 'control-cards', class: 'cards'});
    const partSel = h('select', {id: 'control-part', name: 'part'}, parts.map((p) => h('option', {value: p.id}, `${p.name || p.id}${p.main ? ' (main)' : ''}`)));
    const connect = h('button', {type: 'button', id: 'control-connect', class: 'secondary'}, 'Connect');
    const stopAll = h('button', {type: 'button', id: 'control-stop-all', class: 'stop', disabled: true}, 'STOP ALL');
    let session = null;
    let gen = 0;

    async function open() {
      const my = ++gen;
      if (session) session.close();
      session = null;
      stopAll.disabled = true;
      connect.disabled = true;
      status.className = 'status';
      status.setAttribute('role', 'status');
      replace(status, 'Opening a WebRTC session through the cloud’s relay…');
      replace(cards);
      let s;
      try {
        s = await dialControl({signaling: relaySignaling(ctx.client, partSel.value)});
      } catch (err) {
        if (my !== gen) return;
        fail(err);
        return;
      }
      if (my !== gen || ctx.signal.aborted) {
        s.close();
        return;
      }
      session = s;
      const part = createClient({baseUrl: BASE_URL, fetch: s.fetch, timeoutMs: 10000});
      const live = () => my === gen && !s.error && !ctx.signal.aborted;
      s.closed.then((err) => {
        if (my !== gen || ctx.signal.aborted) return;
        stopAll.disabled = true;
        fail(new Error(`The control session ended: ${err.message}. The part closes it when your access to the machine ends; connect again to find out.`));
      });
      try {
        const who = await part.unary(CONTROL, 'WhoAmI', {});
        const res = await part.unary(COMP, 'ListResources', {});
        if (!live()) return;
        replace(status, `Connected over WebRTC as ${who.displayName || who.subject} (${who.role}).`);
        stopAll.disabled = false;
        stopAll.onclick = () => call(stopAll, () => part.unary(CONTROL, 'StopAll', {}), 'Stopped every component.');
        const comps = (res.resources || []).filter((r) => r.kind === 'RESOURCE_KIND_COMPONENT');
        replace(cards, comps.length ? comps.map((r) => card(part, r, live)) : h('p', null, 'The part runs no components.'));
      } catch (err) {
        if (my === gen) fail(err);
      } finally {
        connect.disabled = false;
        replace(connect, 'Reconnect');
      }
    }

    function fail(err) {
      status.className = 'status error';
      status.setAttribute('role', 'alert');
      replace(status, err && err.message ? err.message : String(err));
      connect.disabled = false;
      replace(connect, 'Connect again');
    }

    /** call runs fn for a button, showing its failure, or done, in the status line. */
    async function call(button, fn, done) {
      button.disabled = true;
      try {
        await fn();
        if (done) {
          status.className = 'status';
          replace(status, done);
        }
      } catch (err) {
        fail(err);
      } finally {
        button.disabled = false;
      }
    }

    function card(part, r, live) {
      const type = typeOf(r);
      const name = r.name;
      const id = (what) => `c-${name.replace(/[^A-Za-z0-9_-]/g, '_')}-${what}`;
      const out = h('p', {class: 'reading', id: id('out'), 'aria-live': 'polite'});
      const showErr = (err) => replace(out, h('span', {class: 'error'}, err.message));
      const stop = h('button', {type: 'button', class: 'stop', id: id('stop')}, `Stop ${name}`);
      stop.addEventListener('click', () => call(stop, () => part.unary(COMP, 'Stop', {name}), `Stopped ${name}.`));
      const body = [];
      if (type === 'motor') {
        const power = h('input', {type: 'range', id: id('power'), min: '-100', max: '100', step: '5', value: '0'});
        const shown = h('output', {for: id('power'), id: id('power-value')}, '0 %');
        const rpm = h('input', {type: 'number', id: id('rpm'), value: '60', step: '10', inputmode: 'decimal'});
        const revs = h('input', {type: 'number', id: id('revs'), value: '1', step: '0.5', inputmode: 'decimal'});
        const go = h('button', {type: 'button', id: id('go'), class: 'secondary'}, 'Go');
        const rtt = h('output', {id: id('rtt'), class: 'hint'});
        power.addEventListener('input', () => replace(shown, `${power.value} %`));
        power.addEventListener('change', async () => {
          replace(shown, `${power.value} %`);
          const t0 = performance.now();
          try {
            await part.unary(COMP, 'MotorSetPower', {name, power: Number(power.value) / 100});
            replace(rtt, `round trip ${(performance.now() - t0).toFixed(0)} ms`);
          } catch (err) {
            fail(err);
          }
        });
        go.addEventListener('click', () => call(go, () => part.unary(COMP, 'MotorGoFor', {name, rpm: Number(rpm.value), revolutions: Number(revs.value)})));
        body.push(
          h('div', {class: 'field'}, h('label', {for: id('power')}, 'Power'), h('div', {class: 'inline'}, power, shown)),
          h('div', {class: 'pair'},
            h('div', {class: 'field'}, h('label', {for: id('rpm')}, 'RPM'), rpm),
            h('div', {class: 'field'}, h('label', {for: id('revs')}, 'Revolutions'), revs)),
          h('div', {class: 'actions'}, go, rtt));
        every(SENSOR_MS, () => !live(), async () => {
          const st = (await part.unary(COMP, 'GetStatus', {name})).status || {};
          replace(out, `${st.moving ? 'moving' : 'stopped'} · power ${Math.round((st.power || 0) * 100)} % · position ${Number(st.position || 0).toFixed(2)} rev`);
        }, showErr);
      } else if (type === 'sensor') {
        const series = new Map();
        const plot = h('div', {class: 'chart-wrap', id: id('chart')});
        body.push(plot);
        every(SENSOR_MS, () => !live(), async () => {
          const rd = (await part.unary(COMP, 'SensorReadings', {name})).readings || {};
          const keys = Object.keys(rd).sort();
          replace(out, h('dl', {class: 'readings'}, keys.map((k) => [h('dt', null, k), h('dd', null, typeof rd[k] === 'object' ? JSON.stringify(rd[k]) : String(rd[k]))])));
          const numeric = keys.filter((x) => typeof rd[x] === 'number');
          for (const x of numeric) {
            const vs = series.get(x) || [];
            vs.push(rd[x]);
            if (vs.length > CHART_POINTS) vs.shift();
            series.set(x, vs);
          }
          // The chart follows the first reading that changes (else the first).
          const k = numeric.find((x) => new Set(series.get(x)).size > 1) ?? numeric[0];
          if (k !== undefined) replace(plot, chart(series.get(k), `${name} ${k}`));
        }, showErr);
      } else if (type === 'camera') {
        const img = h('img', {id: id('image'), alt: `${name}: the latest image`, class: 'camera'});
        let url = '';
        body.push(img);
        every(CAMERA_MS, () => !live(), async () => {
          const im = await part.unary(COMP, 'CameraImage', {name});
          const bytes = Uint8Array.from(atob(im.image || ''), (c) => c.charCodeAt(0));
          const next = URL.createObjectURL(new Blob([bytes], {type: im.mimeType || 'image/jpeg'}));
          img.src = next;
          if (url) URL.revokeObjectURL(url);
          url = next;
          replace(out, `${bytes.length} bytes, ${im.mimeType || 'image'}, at ${new Date().toLocaleTimeString()}`);
        }, showErr);
      } else if (type === 'base') {
        const speed = h('input', {type: 'range', id: id('speed'), min: '50', max: '1000', step: '50', value: '200'});
        const move = (ly, az) => () => call(stop, () => part.unary(COMP, 'BaseSetVelocity', {name,
          linear: {y: ly * Number(speed.value)}, angular: {z: az * 45}}));
        body.push(
          h('div', {class: 'field'}, h('label', {for: id('speed')}, 'Speed (mm/s)'), speed),
          h('div', {class: 'pad'},
            h('button', {type: 'button', class: 'secondary', id: id('fwd'), onclick: move(1, 0)}, 'Forward'),
            h('button', {type: 'button', class: 'secondary', id: id('left'), onclick: move(0, 1)}, 'Left'),
            h('button', {type: 'button', class: 'secondary', id: id('right'), onclick: move(0, -1)}, 'Right'),
            h('button', {type: 'button', class: 'secondary', id: id('back'), onclick: move(-1, 0)}, 'Back')));
        every(SENSOR_MS, () => !live(), async () => {
          const st = (await part.unary(COMP, 'GetStatus', {name})).status || {};
          replace(out, `${st.moving ? 'moving' : 'stopped'}`);
        }, showErr);
      }
      body.push(doCommand(part, name, id));
      return h('section', {class: 'card component', 'data-component': name, 'data-type': type || 'generic', 'aria-labelledby': id('title')},
        h('div', {class: 'card-head'}, h('h3', {id: id('title')}, name), h('span', {class: 'hint'}, `${type || 'component'}${r.model ? ' · ' + r.model : ''}`)),
        r.state === 'RESOURCE_STATE_FAILED' ? h('p', {class: 'error'}, r.error || 'failed') : null,
        out, body, h('div', {class: 'actions'}, stop));
    }

    function doCommand(part, name, id) {
      const ta = h('textarea', {id: id('cmd'), rows: '3', class: 'code', spellcheck: 'false'}, '{}');
      ta.value = '{}';
      const send = h('button', {type: 'button', class: 'secondary', id: id('cmd-send')}, 'Send');
      const result = h('pre', {class: 'code', id: id('cmd-result'), 'aria-live': 'polite'});
      send.addEventListener('click', async () => {
        let command;
        try {
          command = JSON.parse(ta.value || '{}');
        } catch (err) {
          replace(result, h('span', {class: 'error'}, `not JSON: ${err.message}`));
          return;
        }
        send.disabled = true;
        try {
          replace(result, JSON.stringify((await part.unary(COMP, 'DoCommand', {name, command})).result || {}, null, 2));
        } catch (err) {
          replace(result, h('span', {class: 'error'}, err.message));
        } finally {
          send.disabled = false;
        }
      });
      return h('details', {class: 'docommand'}, h('summary', null, 'DoCommand'),
        h('div', {class: 'field'}, h('label', {for: id('cmd')}, `Command for ${name} (JSON)`), ta),
        h('div', {class: 'actions'}, send), result);
    }

    connect.addEventListener('click', open);
    partSel.addEventListener('change', open);
    ctx.signal.addEventListener('abort', () => {
      gen++;
      if (session) session.close();
    }, {once: true});
    if (parts.length) open();
    else replace(status, 'This machine has no parts.');
    return h('div', {id: 'control'},
      h('div', {class: 'toolbar'},
        parts.length > 1 ? h('div', {class: 'field'}, h('label', {for: 'control-part'}, 'Part'), partSel) : null,
        connect),
      status,
      cards,
      h('div', {class: 'stopbar'}, stopAll));
  },
};
