"""The front end's rules, read from its files: ES modules that pass the project's ESLint rules, no
markup built from data, no inline style or script in templates, one test hook on window."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
JS = ROOT / "web" / "static" / "js"
TEMPLATES = ROOT / "web" / "templates"


def scripts() -> list[Path]:
    return sorted(JS.rglob("*.js"))


def test_eslint_finds_nothing():
    eslint = ROOT / "node_modules" / ".bin" / "eslint"
    assert eslint.exists(), "node_modules lacks eslint: `make setup` runs npm ci"
    node = shutil.which("node")
    assert node, "Node.js is missing: `make setup` installs it"
    done = subprocess.run([str(eslint), "web/static/js"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_markup_from_strings_in_scripts_or_templates():
    sinks = re.compile(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|createContextualFragment")
    found = [f"{p.relative_to(ROOT)}:{n}" for p in [*scripts(), *TEMPLATES.glob("*.html")]
             for n, line in enumerate(p.read_text().splitlines(), 1) if sinks.search(line)]
    assert found == []


def test_templates_carry_no_inline_style_script_or_unescaped_data():
    found = []
    for path in TEMPLATES.glob("*.html"):
        html = path.read_text()
        for pattern in (r"\sstyle\s*=", r"\son[a-z]+\s*=", r"\|\s*safe\b", r"<style\b", r"javascript:",
                        r"<script(?![^>]*\b(src=|type=\"application/json\"))[^>]*>"):
            found += [f"{path.name}: {m.group(0)}" for m in re.finditer(pattern, html)]
    assert found == []


def test_pages_load_their_code_as_modules_after_the_vendor_scripts():
    for name in ("index", "dispatch", "planner", "report", "public"):
        html = (TEMPLATES / f"{name}.html").read_text()
        module = f"js/pages/{name}.js"
        assert f"<script type=\"module\" src=\"{{{{ url_for('static', filename='{module}') }}}}\">" in html
        vendor = [m.start() for m in re.finditer(r"<script src=\"\{\{ url_for\('vendor\.asset'", html)]
        assert vendor and max(vendor) < html.index(module), name
        assert (JS / "pages" / f"{name}.js").exists()
    assert not list(JS.glob("*.js")), "page code lives in pages/, shared code in lib/ and layers/"


def test_one_global_for_the_tests_and_no_other():
    globals_set = {m.group(1) for p in scripts()
                   for m in re.finditer(r"window\.(anwang\w*)\s*=", p.read_text())}
    assert globals_set == {"anwangTest"}
