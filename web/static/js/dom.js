// DOM helpers. Every string a server sends is shown as text: elements are
// made with createElement and text with text nodes, never by parsing
// markup (innerHTML is never used, and the page's Trusted Types policy
// makes it throw). Attributes are set one by one; an event handler is a
// function, never a string.

// Attributes h sets as properties rather than with setAttribute.
const PROPS = new Set(['value', 'checked', 'disabled', 'hidden', 'textContent']);

/**
 * h makes an element: h('button', {type: 'submit', onclick: fn}, 'Sign in').
 * Children are nodes, strings (made text nodes), numbers, or arrays of
 * them; null, undefined and false are skipped.
 * @param {string} tag
 * @param {Object<string, any>} [attrs]
 * @param {...any} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) {
      if (typeof v !== 'function') throw new TypeError(`h: ${k} must be a function`);
      el.addEventListener(k.slice(2), v);
    } else if (PROPS.has(k)) {
      el[k] = v;
    } else if (k === 'class') {
      el.className = String(v);
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

/**
 * append adds children to el, as h does.
 * @param {Node} el
 * @param {any[]} children
 */
export function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/**
 * replace empties el and adds children.
 * @param {Node} el
 * @param {...any} children
 */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

/**
 * byId returns the element with id, or throws naming it.
 * @param {string} id
 * @returns {HTMLElement}
 */
export function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`the page has no element #${id}`);
  return el;
}
