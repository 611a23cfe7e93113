/* The domain's words (geo/vocabulary.py) in the reader's language, from the page's
 * <script type="application/json" id="vocabulary"> block: a key is compared, its label is shown. */

let vocabulary = null;

function load() {
  if (vocabulary === null) {
    const block = document.getElementById("vocabulary");
    vocabulary = block ? JSON.parse(block.textContent) : { names: {}, levels: {} };
  }
  return vocabulary;
}

/** The reader's word for a key of one kind: label("category", "dispute") → 矛盾纠纷. */
export function label(kind, key) {
  if (key === null || key === undefined) { return ""; }
  const names = load().names[kind] || {};
  return Object.prototype.hasOwnProperty.call(names, key) ? names[key] : String(key);
}

/** The name of a level number (1 district … 5 micro-grid) in the reader's language. */
export function levelLabel(level) {
  return label("level", load().levels[level]);
}
