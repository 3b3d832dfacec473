"""The phrasing evals on the offline planner, pass^5: every phrasing of every intent passes
all five runs; the count per intent and pass^5 are printed and written as JSON."""

from __future__ import annotations

import json

from tests.conftest import ARTIFACTS
from tests.evals.phrasings import run_phrasings

K = 5
INTENTS = {
    "create_site", "delete_site", "get_site", "list_sites", "query_logs", "get_metrics",
    "diagnose", "backup_site", "list_backups", "restore_site", "undelete_site", "list_packages",
    "update_site", "bulk_sites", "clone_site", "get_drift", "promote_site", "rollback_site",
    "import_site", "list_env", "set_env", "unset_env", "get_billing", "billing_summary",
    "list_tenants", "unsupported",
}  # fmt: skip


def test_every_intent_passes_all_five_runs_of_every_phrasing() -> None:
    tallies = run_phrasings(K)
    assert set(tallies) == INTENTS
    total = sum(t.cases for t in tallies.values())
    passed = sum(t.passed_all for t in tallies.values())
    print(f"\n{'intent':18} {'cases':>5} {'pass^5':>7}  kinds")
    for intent, tally in sorted(tallies.items()):
        print(f"{intent:18} {tally.cases:5} {tally.passed_all / tally.cases:7.0%}  "
              f"{', '.join(sorted(tally.kinds))}")  # fmt: skip
    print(f"{'all':18} {total:5} {passed / total:7.0%}")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "evals-phrasings.json").write_text(json.dumps({
        "k": K, "cases": total, "pass_k": passed / total,
        "intents": {i: {"cases": t.cases, "pass_k": t.passed_all / t.cases}
                    for i, t in sorted(tallies.items())},
    }, indent=2))  # fmt: skip
    failures = [f"{i}: {f}" for i, t in sorted(tallies.items()) for f in t.failures]
    assert not failures, "\n".join(failures)
