/* What the browser tests may reach inside a page: one object, window.anwangTest, and nothing else
 * of the page's state on window. */

/** Put a page's handles under window.anwangTest[name]. */
export function expose(name, value) {
  if (!window.anwangTest) { window.anwangTest = {}; }
  window.anwangTest[name] = value;
}
