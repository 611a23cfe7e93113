// The front end's rules: ES modules in the browser with Leaflet as the one global, and no way for
// data to become markup or code (the pages run under script-src 'self' and style-src 'self').
import js from "@eslint/js";
import globals from "globals";

const MARKUP = "Data reaches the page as text: build nodes with lib/dom.js.";
// Leaflet treats a string given as a tooltip, popup or divIcon html as markup (innerHTML), so
// their content is always a function returning a node, and a divIcon's html a node built by a call.
const LEAFLET_CONTENT = "bindTooltip|bindPopup|setTooltipContent|setPopupContent|setContent";
const FUNCTION = "ArrowFunctionExpression|FunctionExpression";

export default [
  js.configs.recommended,
  {
    files: ["web/static/js/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser, L: "readonly" },
    },
    rules: {
      "no-eval": "error",
      "no-implied-eval": "error",
      "no-new-func": "error",
      "no-script-url": "error",
      "no-unused-vars": ["error", { args: "after-used", caughtErrors: "none" }],
      "no-restricted-properties": ["error",
        { property: "innerHTML", message: MARKUP },
        { property: "outerHTML", message: MARKUP },
        { property: "insertAdjacentHTML", message: MARKUP },
        { property: "createContextualFragment", message: MARKUP },
        { object: "document", property: "write", message: MARKUP },
        { object: "document", property: "writeln", message: MARKUP },
      ],
      "no-restricted-syntax": ["error",
        { selector: `CallExpression[callee.property.name=/^(${LEAFLET_CONTENT})$/][arguments.0.type!=/^(${FUNCTION})$/]`,
          message: "Leaflet renders a string as HTML: pass a function returning a node built with lib/dom.js." },
        { selector: "CallExpression[callee.property.name=/^(divIcon|DivIcon)$/] Property[key.name='html'][value.type!='CallExpression']",
          message: "A divIcon's html string is markup: pass a node built with lib/dom.js." },
        { selector: "CallExpression[callee.property.name='setAttribute'][arguments.0.value=/^(style|on)/i]",
          message: "Styles go through the CSSOM (element.style) and handlers through addEventListener." },
        { selector: "NewExpression[callee.name='DOMParser']", message: MARKUP },
      ],
    },
  },
  {
    // The service worker: a classic script whose first lines (VERSION, SHELL) the server writes.
    files: ["web/static/js/worker/sw.js"],
    languageOptions: { sourceType: "script", globals: { ...globals.serviceworker, VERSION: "readonly", SHELL: "readonly" } },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { ecmaVersion: 2022, sourceType: "module" },
  },
];
