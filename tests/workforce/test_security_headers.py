"""The browser security headers over a real server on 127.0.0.1: every HTML page carries a
Content-Security-Policy without inline script, with nosniff, a referrer policy and X-Frame-Options; every
other answer (JSON, files, metrics, the invocations fast path, the sign-in middleware's refusals) nosniff.
That the pages work under the policy is the browser tests' part (the ``page`` fixture fails on any
violation)."""

from __future__ import annotations

import re

import httpx
import pytest

from api.test_permission_matrix import MATRIX, concrete
from auth_helpers import admin_token, bearer
from loopwise.api.headers import DOCS_PATHS
from loopwise.app import background_server
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.service import create_endpoint
from loopwise.storage import Store
from loopwise.workforce import service

#: the pages a signed-in admin sees, each of which must come back as HTML with the policy
PAGES = {
    "/signin",
    "/account/password",
    "/console/endpoints",
    "/console/endpoints/reviews",
    "/console/alerts",
    "/console/loop",
    "/console/labeling",
    "/label",
}


def _policy(header: str) -> dict[str, str]:
    directives = (part.strip().split(" ", 1) for part in header.split(";") if part.strip())
    return {d[0]: d[1] if len(d) > 1 else "" for d in directives}


def _assert_page(answer: httpx.Response) -> None:
    where = (answer.request.method, answer.request.url.path, answer.status_code)
    header = answer.headers.get("content-security-policy", "")
    policy = _policy(header)
    assert policy.get("default-src") == "'self'", where
    assert policy.get("script-src") == "'self'" and "unsafe-inline" not in header, where
    assert policy.get("style-src") == "'self'", where  # no template uses a style attribute
    expected = {
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    assert {key: policy.get(key) for key in expected} == expected, where
    _assert_companions(answer)


def _assert_companions(answer: httpx.Response) -> None:
    where = (answer.request.method, answer.request.url.path, answer.status_code)
    assert answer.headers.get("x-content-type-options") == "nosniff", where
    assert answer.headers.get("referrer-policy") == "same-origin", where
    assert answer.headers.get("x-frame-options") == "DENY", where


def _assert_nosniff(answer: httpx.Response) -> None:
    where = (answer.request.method, answer.request.url.path, answer.status_code)
    assert answer.headers.get("x-content-type-options") == "nosniff", where


@pytest.mark.parametrize("store", ["sqlite"], indirect=True)
def test_every_page_has_the_policy_and_every_answer_nosniff(two_models: Store) -> None:
    store = two_models
    variants = [{"name": "VariantA", "model": "small-tfidf:1", "weight": 1}]
    create_endpoint(store, "reviews", parse_endpoint_config({"variants": variants}))
    service.create_worker(store, "worker@example.com", role="worker")
    labeler = service.create_token(store, "worker@example.com", "headers")
    with (
        background_server(store) as (url, _),
        httpx.Client(base_url=url, headers={**bearer(admin_token(store)), "Accept": "text/html"}) as admin,
    ):
        pages = set()
        for method, template in MATRIX:  # every route's page or answer, the endpoint "reviews"'s
            if method != "GET":
                continue
            path = concrete(template, name="reviews", made_up_id="1")
            answer = admin.get(path)
            if path in DOCS_PATHS and answer.headers["content-type"].startswith("text/html"):
                # FastAPI's API explorers: inline script from a CDN, still never framed
                assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
                _assert_companions(answer)
            elif answer.headers.get("content-type", "").startswith("text/html"):
                _assert_page(answer)
                pages.add(path)
            else:
                _assert_nosniff(answer)
        assert pages >= PAGES, f"not answered as pages: {sorted(PAGES - pages)}"
        missing = admin.get("/console/endpoints/nope")  # the not-found page
        assert missing.status_code == 404
        _assert_page(missing)

        # what answers ahead of the app: the invocations fast path (answers and errors) ...
        answered = admin.post("/endpoints/reviews/invocations", json={"features": ["lovely dress"]})
        assert answered.status_code == 200 and answered.headers["content-type"] == "application/json"
        _assert_nosniff(answered)
        _assert_nosniff(admin.get("/endpoints/reviews/invocations"))  # 405, a JSON error
        _assert_nosniff(admin.post("/endpoints/nope/invocations", json={"features": ["x"]}))
        # ... and the sign-in middleware's refusals: JSON for programs, a page for browsers
        with httpx.Client(base_url=url) as anonymous:
            refused = anonymous.get("/api/v1/endpoints")
            assert refused.status_code == 401
            _assert_nosniff(refused)
            _assert_nosniff(anonymous.get("/console/endpoints", headers={"Accept": "text/html"}))  # 303
        forbidden = httpx.get(f"{url}/console/endpoints", headers={**bearer(labeler), "Accept": "text/html"})
        assert forbidden.status_code == 403 and "may not do this" in forbidden.text
        _assert_page(forbidden)


def test_no_template_holds_inline_script_or_style() -> None:
    """What the policy refuses, found in the templates without a browser: inline script blocks, event
    handler attributes, ``javascript:`` links and style attributes or blocks (data for a script goes in
    ``data-*`` attributes or a ``<script type="application/json">`` block)."""
    from loopwise.web.pages import HERE

    refused = re.compile(
        r"<script(?![^>]*\bsrc=)(?![^>]*type=\"application/json\")[^>]*>"
        r"|\son[a-z]+\s*=|javascript:|\sstyle\s*=|<style\b",
        re.IGNORECASE,
    )
    templates = sorted((HERE / "templates").glob("*.html"))
    assert templates
    found = {t.name: refused.findall(t.read_text(encoding="utf-8")) for t in templates}
    assert not {name: hits for name, hits in found.items() if hits}
