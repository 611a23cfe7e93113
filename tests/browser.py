"""Browser-test helpers: the system Chromium with every non-local request blocked and recorded."""
from __future__ import annotations

from urllib.parse import urlsplit

LOCAL_HOSTS = {"127.0.0.1", "localhost"}


def open_page(browser, base_url, external: list, console_errors: list, **context_options):
    """A page in a new context (options for new_context may override the defaults)."""
    # Service workers are off unless a test asks for them: what a worker fetches by itself passes
    # neither the gate below nor a test's own routes.
    context = browser.new_context(**{"viewport": {"width": 1400, "height": 900}, "locale": "zh-CN",
                                     "service_workers": "block", **context_options})

    def gate(route):
        host = urlsplit(route.request.url).hostname
        if host in LOCAL_HOSTS:
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort("internetdisconnected")

    context.route("**/*", gate)
    page = context.new_page()
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: console_errors.append(str(e)))
    return page


def login(page, base_url, name, password):
    """Log in through the login page; wait until the role's start page (a grid worker's: /day)."""
    page.goto(f"{base_url}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url.startswith(base_url) and "/login" not in url)


def wait_for(page, expression: str, arg=None, timeout: float = 10000, polling: float = 100):
    """Wait until a JavaScript expression is truthy in the page; return its value.

    Polls with page.evaluate, which the page's Content-Security-Policy does not govern
    (Playwright's wait_for_function evaluates its predicate with eval, which a strict CSP refuses).
    """
    import time

    deadline = time.monotonic() + timeout / 1000
    while True:
        value = page.evaluate(expression, arg)
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} ms waiting for {expression!r}")
        page.wait_for_timeout(polling)
