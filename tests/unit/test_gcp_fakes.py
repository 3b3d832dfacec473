"""The GCP fakes fail loudly: an unknown route, a body off the documented schema, or a
Logging filter outside the subset they understand is recorded and fails the test."""

from __future__ import annotations

import pytest
import requests

from tests.integration.gcp_fakes import (
    UNKNOWN_ROUTE,
    Fake,
    FakeCloudflare,
    FakeLogging,
    Field,
    Refused,
    parse_log_filter,
    validate,
    validate_record,
)
from tests.live import serve


def test_an_unknown_route_answers_loudly_and_fails_the_test() -> None:
    fake = Fake()
    with serve(fake.app()) as url:
        response = requests.get(f"{url}/v1/projects/p/secrets/nope", timeout=5)
    assert response.status_code == UNKNOWN_ROUTE != 404
    assert fake.problems == ["GET /v1/projects/p/secrets/nope: no route in Fake"]
    with pytest.raises(AssertionError, match="no route"):
        fake.assert_clean()


def test_bodies_are_checked_field_by_field() -> None:
    schema = {"name": Field(str, required=True), "ttl": Field(int, check=lambda v: v > 0),
              "meta": Field({"tag": Field(str)}), "tags": Field(list, items=str)}  # fmt: skip
    validate({"name": "a", "ttl": 5, "meta": {"tag": "x"}, "tags": ["t"]}, schema)
    for body, problem in (
        ({}, r"body.name is required"),
        ({"name": "a", "extra": 1}, r"unknown field\(s\) \['extra'\]"),
        ({"name": 1}, r"body.name must be str"),
        ({"name": "a", "ttl": True}, r"body.ttl must be int"),
        ({"name": "a", "ttl": -1}, r"body.ttl has an invalid value -1"),
        ({"name": "a", "meta": {"tog": "x"}}, r"body.meta has unknown field"),
        ({"name": "a", "tags": [1]}, r"body.tags\[0\] must be str"),
    ):
        with pytest.raises(Refused, match=problem):
            validate(body, schema)


def test_a_cloudflare_record_with_a_bad_content_or_ttl_is_refused() -> None:
    good = {"name": "a.example.com", "type": "CNAME", "content": "ghs.googlehosted.com",
            "ttl": 300, "proxied": False, "comment": "aipress"}  # fmt: skip
    validate_record(good)
    # The load balancer's addresses, and a certificate's DNS authorization proof (underscores).
    for change in ({"type": "A", "content": "203.0.113.7"},
                   {"type": "AAAA", "content": "2001:db8::7"},
                   {"name": "_acme-challenge_ab12.a.example.com",
                    "content": "x1.authorize.certificatemanager.goog"}):  # fmt: skip
        validate_record({**good, **change})
    for change in ({"content": "https://ghs.googlehosted.com/"}, {"content": "ghs."},
                   {"ttl": 10}, {"ttl": 100_000}, {"type": "A"}, {"type": "MX"},
                   {"type": "AAAA", "content": "203.0.113.7"},
                   {"type": "A", "content": "2001:db8::7"}):  # fmt: skip
        with pytest.raises(Refused):
            validate_record({**good, **change})
    fake = FakeCloudflare("z")
    with serve(fake.app()) as url:
        response = requests.post(f"{url}/client/v4/zones/z/dns_records",
                                 json={**good, "ttl": 5}, timeout=5)  # fmt: skip
    assert response.status_code == 400 and fake.records == {}
    assert "body.ttl has an invalid value 5" in fake.problems[0]


def test_a_cname_shares_its_name_with_no_record_and_a_aaaa_may_pair() -> None:
    fake = FakeCloudflare("z")
    base = {"ttl": 300, "proxied": False, "comment": "aipress"}
    with serve(fake.app()) as url:

        def post(name: str, kind: str, content: str) -> requests.Response:
            return requests.post(f"{url}/client/v4/zones/z/dns_records", timeout=5,
                                 json={**base, "name": name, "type": kind, "content": content})  # fmt: skip

        assert post("a.example.com", "A", "203.0.113.7").status_code == 200
        assert post("a.example.com", "AAAA", "2001:db8::7").status_code == 200
        identical = post("a.example.com", "A", "203.0.113.7")
        assert identical.status_code == 400 and identical.json()["errors"][0]["code"] == 81058
        cname = post("a.example.com", "CNAME", "ghs.googlehosted.com")
        assert cname.status_code == 400 and cname.json()["errors"][0]["code"] == 81053
        assert post("b.example.com", "CNAME", "ghs.googlehosted.com").status_code == 200
        beside = post("b.example.com", "A", "203.0.113.7")
        assert beside.status_code == 400 and beside.json()["errors"][0]["code"] == 81053
    assert len(fake.records) == 3
    fake.assert_clean()


def test_the_logging_fake_applies_the_filter_and_refuses_what_it_cannot_parse() -> None:
    terms = parse_log_filter('resource.type="cloud_run_revision" AND '
                             'timestamp>="2026-01-01T00:00:00+00:00"')  # fmt: skip
    assert terms == [("resource.type", "=", "cloud_run_revision"),
                     ("timestamp", ">=", "2026-01-01T00:00:00+00:00")]  # fmt: skip
    for text in ('resource.type="x" OR severity="ERROR"', 'textPayload:"boom"',
                 'labels.foo="x"', 'resource.type!="x"'):  # fmt: skip
        with pytest.raises(Refused):
            parse_log_filter(text)
    fake = FakeLogging()
    fake.entries = [
        {"timestamp": "2026-01-01T00:00:10Z", "resource": {"type": "cloud_run_revision",
                                                             "labels": {"service_name": "a"}}},
        {"timestamp": "2026-01-01T00:00:20Z", "resource": {"type": "cloud_run_revision",
                                                             "labels": {"service_name": "b"}}},
        {"timestamp": "2025-12-31T23:59:00Z", "resource": {"type": "cloud_run_revision",
                                                             "labels": {"service_name": "a"}}},
    ]  # fmt: skip
    with serve(fake.app()) as url:
        found = requests.post(
            f"{url}/v2/entries:list",
            timeout=5,
            json={
                "filter": (
                    'resource.type="cloud_run_revision" AND resource.labels.service_name="a" '
                    'AND timestamp>="2026-01-01T00:00:00Z" AND timestamp<="2026-01-01T01:00:00Z"'
                )
            },
        )
        refused = requests.post(f"{url}/v2/entries:list", timeout=5,
                                json={"filter": 'resource.type="cloud_run_revision"'})  # fmt: skip
    assert [e["timestamp"] for e in found.json()["entries"]] == ["2026-01-01T00:00:10Z"]
    assert refused.status_code == 400 and "unbounded query" in fake.problems[0]
