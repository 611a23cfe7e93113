/* The reader's words: every page carries its interface strings, already translated by the server,
 * in <script type="application/json" id="i18n"> (and shared parts in blocks marked data-i18n). */

let words = null;

function load() {
  if (words === null) {
    words = {};
    for (const block of document.querySelectorAll('script#i18n, script[data-i18n]')) {
      Object.assign(words, JSON.parse(block.textContent));
    }
  }
  return words;
}

/** The reader's word for a key, with "{name}" placeholders filled from values (as text). */
export function t(key, values) {
  const word = load()[key];
  const pattern = word === undefined || word === null ? key : String(word);
  return values ? fillPattern(pattern, values) : pattern;
}

/** Whether the page has a word for this key. */
export function has(key) {
  return Object.prototype.hasOwnProperty.call(load(), key);
}

/** "{name}" in a pattern replaced by values[name]; unknown names stay as written. */
export function fillPattern(pattern, values) {
  return pattern.replace(/\{(\w+)\}/g, (all, name) =>
    values[name] === undefined || values[name] === null ? all : String(values[name]));
}

/** The page's language: "zh" or "en". */
export function locale() {
  return document.documentElement.lang.startsWith("zh") ? "zh" : "en";
}

/** The reader's word for a key, or `fallback` (a value from data) when the page has none. */
export function wordOr(key, fallback) {
  return has(key) ? t(key) : (fallback === null || fallback === undefined ? "" : String(fallback));
}
