"""webchat/coalesce.js, which the Sites and Backups panels refresh through: one run at a time,
and the calls that come during a run make exactly one more run after it."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Browser, Route

WEBCHAT = Path(__file__).resolve().parents[2] / "webchat"
ORIGIN = "http://webchat.test"

# Run 1 waits on a gate; two calls meanwhile return at once; run 1's end starts run 2 (one
# for both calls), and nothing after it. A failing run goes to onError, and the next call
# runs again.
SCRIPT = """async () => {
  const { coalesced } = await import("/coalesce.js");
  // Never wait long: a call that should return at once and does not says "waited".
  const soon = (promise) => Promise.race([promise, new Promise((resolve) => setTimeout(() => resolve("waited"), 1000))]);
  const gates = [];
  let runs = 0;
  const refresh = coalesced(async () => {
    runs += 1;
    await new Promise((resolve) => gates.push(resolve));
  }, () => {});
  const first = refresh();
  const calls = [await soon(refresh()), await soon(refresh())];
  const duringFirst = runs;
  gates[0]();
  for (let i = 0; i < 100 && gates.length < 2; i += 1) await new Promise((resolve) => setTimeout(resolve, 5));
  if (gates[1]) gates[1]();
  calls.push(await soon(first));
  await new Promise((resolve) => setTimeout(resolve, 20));
  const errors = [];
  let failing = true;
  let flakyRuns = 0;
  const flaky = coalesced(async () => {
    flakyRuns += 1;
    if (failing) throw new Error("no network");
  }, (e) => errors.push(e.message));
  await flaky();
  failing = false;
  await flaky();
  return { duringFirst, runs, calls, errors, flakyRuns };
}"""


def _serve(route: Route) -> None:
    name = route.request.url.removeprefix(ORIGIN + "/")
    if name == "":
        route.fulfill(body="<!doctype html><title>coalesce</title>", content_type="text/html")
    else:
        route.fulfill(path=WEBCHAT / name, content_type="text/javascript")


def test_calls_during_a_refresh_make_one_more_and_errors_go_to_the_handler(
    browser: Browser,
) -> None:
    context = browser.new_context()
    try:
        context.route(f"{ORIGIN}/**", _serve)
        page = context.new_page()
        page.goto(ORIGIN + "/")
        result = page.evaluate(SCRIPT)
    finally:
        context.close()
    assert result == {"duringFirst": 1, "runs": 2, "errors": ["no network"], "flakyRuns": 2,
                      "calls": [None, None, None]}  # fmt: skip
