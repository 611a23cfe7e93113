/* The one way page code makes DOM: elements are created, strings become text nodes, styles go
 * through the CSSOM. Nothing here parses markup, so a name or description from the database is
 * shown as the characters it holds, whatever they are. */

const SVG_NS = "http://www.w3.org/2000/svg";
// Attributes that hold a URL; only these schemes may go in (never javascript: or data:).
const URL_ATTRS = new Set(["href", "src", "action", "formaction", "xlink:href", "poster"]);
const SAFE_URL = /^(?:https?:|mailto:|tel:|[/?#.]|[^:/?#]*(?:[/?#]|$))/i;

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) { continue; }
    const lower = name.toLowerCase();
    // Handlers and style attributes are what a strict CSP refuses; they are never needed here.
    if (lower.startsWith("on") || lower === "style") {
      throw new Error(`dom.js sets no ${name} attribute: use addEventListener or the style option`);
    }
    const text = value === true ? "" : String(value);
    if (URL_ATTRS.has(lower) && !SAFE_URL.test(text.trim())) {
      throw new Error(`unsafe URL refused for ${name}`);
    }
    node.setAttribute(name, text);
  }
}

function setStyle(node, style) {
  for (const [name, value] of Object.entries(style)) {
    if (value === null || value === undefined) { continue; }
    if (name.startsWith("--")) { node.style.setProperty(name, String(value)); } else { node.style[name] = value; }
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) { continue; }
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function build(node, props, children) {
  const { className, attrs, dataset, style, on, text, ...rest } = props || {};
  if (className) { node.setAttribute("class", Array.isArray(className) ? className.filter(Boolean).join(" ") : className); }
  if (attrs) { setAttrs(node, attrs); }
  if (dataset) {
    for (const [key, value] of Object.entries(dataset)) {
      if (value !== null && value !== undefined) { node.dataset[key] = String(value); }
    }
  }
  if (style) { setStyle(node, style); }
  if (on) {
    for (const [type, handler] of Object.entries(on)) { node.addEventListener(type, handler); }
  }
  // Plain DOM properties (type, value, disabled, hidden, checked …), never markup.
  for (const [key, value] of Object.entries(rest)) {
    if (/html$/i.test(key) || /^on/i.test(key)) { throw new Error(`dom.js sets no ${key} property`); }
    node[key] = value;
  }
  if (text !== undefined && text !== null) { node.textContent = String(text); }
  return append(node, children);
}

/** Build an HTML element: el("td", {className, attrs, dataset, style, on}, ...children). */
export function el(tag, props, ...children) {
  return build(document.createElement(tag), props, children);
}

/** Build an SVG element the same way (attributes such as fill or transform go in attrs). */
export function svg(tag, props, ...children) {
  return build(document.createElementNS(SVG_NS, tag), props, children);
}

/** A text node. */
export function text(value) {
  return document.createTextNode(value === null || value === undefined ? "" : String(value));
}

/** Remove every child of a node; return the node. */
export function clear(node) {
  while (node.firstChild) { node.removeChild(node.firstChild); }
  return node;
}

/** Replace a node's children with these (strings become text). */
export function fill(node, ...children) {
  return append(clear(node), children);
}

/** Set a node's text (null and undefined become empty). */
export function setText(node, value) {
  node.textContent = value === null || value === undefined ? "" : String(value);
  return node;
}

/** The element with this id. */
export function byId(id) {
  return document.getElementById(id);
}
