"""The browser watch every E2E test runs under: it sees console errors, uncaught errors,
failed fetches and 4xx/5xx answers, and lets through only the answers a test declared."""

from __future__ import annotations

from playwright.sync_api import Browser, Route

from tests.e2e.conftest import BrowserProblems

PAGE = """<!doctype html><title>probe</title><script>
fetch('/missing').then(() => fetch('/gone')).catch(() => {}).then(() => {
  console.error('boom in the console');
  fetch('/refused').catch(() => { document.title = 'done'; });
});
setTimeout(() => { throw new Error('uncaught boom'); }, 0);
</script>"""


def _serve(route: Route) -> None:
    path = route.request.url.split("e2e.invalid", 1)[1]
    if path == "/":
        route.fulfill(status=200, content_type="text/html", body=PAGE)
    elif path == "/missing":
        route.fulfill(status=404, body="no")
    elif path == "/gone":
        route.fulfill(status=500, body="no")
    else:
        route.abort("connectionrefused")


def _probe(chromium: Browser, problems: BrowserProblems) -> None:
    context = chromium.new_context()
    problems.attach(context)
    context.route("http://e2e.invalid/**", _serve)
    page = context.new_page()
    page.goto("http://e2e.invalid/")
    page.wait_for_function("document.title === 'done'")
    context.close()


def test_every_kind_of_problem_is_seen(chromium: Browser) -> None:
    problems = BrowserProblems()
    _probe(chromium, problems)
    assert sorted(p.split(":")[0] for p in problems.seen) == [
        "HTTP 404", "HTTP 500", "console error", "request failed", "uncaught error"]  # fmt: skip
    assert any("uncaught boom" in p for p in problems.seen)
    assert any("boom in the console" in p for p in problems.seen)


def test_only_declared_answers_are_let_through(chromium: Browser) -> None:
    problems = BrowserProblems()
    problems.expect(r"/missing$", 404)
    problems.expect(r"/gone$", 404)  # the wrong status: the 500 still counts
    _probe(chromium, problems)
    statuses = [p for p in problems.seen if p.startswith("HTTP")]
    assert statuses == ["HTTP 500: GET http://e2e.invalid/gone"]
