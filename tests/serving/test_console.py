"""The web console's endpoint pages over a real server on 127.0.0.1, and their charts drawn in Chromium."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from auth_helpers import sign_in
from conftest import running_server
from loopwise.serving.config import parse_endpoint_config
from loopwise.serving.metrics import CHARTS
from loopwise.serving.service import create_endpoint, update_weights
from loopwise.storage import Store

pytestmark = pytest.mark.sqlite_only

URL = "/endpoints/reviews/invocations"
LINES_IN_EVERY_CHART = """([charts, variants]) => {
    const figures = document.querySelectorAll("figure.chart");
    return figures.length === charts && [...figures].every((figure) => variants.every((v) =>
        figure.querySelectorAll(`svg polyline[data-variant=${v}]`).length === 1));
}"""
#: whether the totals table shows ``n`` invocations for ``variant``
SHOWS_TOTAL = """([variant, n]) =>
    document.querySelector(`#totals tr[data-variant=${variant}]`)?.children[1].textContent === n"""


def _endpoint(store: Store) -> None:
    config = {
        "variants": [
            {"name": "VariantA", "model": "small-tfidf:1", "weight": 50},
            {"name": "VariantB", "model": "small-tfidf:2", "weight": 50},
        ]
    }
    create_endpoint(store, "reviews", parse_endpoint_config(config))


def _send(client: httpx.Client, variant: str, count: int) -> None:
    for number in range(count):
        answer = client.post(
            URL,
            json={"features": [f"review number {number}: I love this dress"]},
            headers={"X-Amzn-SageMaker-Target-Variant": variant},
        )
        assert answer.status_code == 200, answer.text


def test_the_console_pages_and_the_endpoint_api(two_models: Store) -> None:
    _endpoint(two_models)
    with running_server(two_models) as (client, _):
        listed = client.get("/api/v1/endpoints").json()
        assert [(e["name"], e["status"], e["config_version"]) for e in listed] == [
            ("reviews", "InService", 1)
        ]
        assert listed[0]["traffic_shares"] == {"VariantA": 0.5, "VariantB": 0.5}
        described = client.get("/api/v1/endpoints/reviews").json()
        assert described["live_instances"] == {"VariantA": 1, "VariantB": 1}
        assert [h["version"] for h in described["history"]] == [1]

        page = client.get("/console/endpoints")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert 'href="/console/endpoints/reviews"' in page.text and "VariantA 50%" in page.text
        assert client.get("/console", follow_redirects=False).headers["location"] == "/console/endpoints"

        update_weights(two_models, "reviews", {"VariantA": 0, "VariantB": 100})
        described = client.get("/api/v1/endpoints/reviews").json()
        assert described["config_version"] == 2 and len(described["history"]) == 2
        page = client.get("/console/endpoints/reviews")
        assert page.status_code == 200
        for metric, _ in CHARTS:
            assert f'data-metric="{metric}"' in page.text
        assert 'data-variant="VariantB" data-share="1.0">VariantB 100%' in page.text
        assert "weights: VariantA=0, VariantB=100" in page.text  # the configuration history

        missing = client.get("/console/endpoints/nope")
        assert missing.status_code == 404 and "nope" in missing.text and "<h1>Not found</h1>" in missing.text
        assert client.get("/api/v1/endpoints/nope").status_code == 404
        wrong_method = client.get(URL)  # the invocations path answers POST only, with a JSON error
        assert wrong_method.status_code == 405 and "POST" in wrong_method.json()["error"]["message"]
        script = client.get("/static/charts.js")
        assert script.status_code == 200 and "drawLineChart" in script.text


def _totals(page: Any) -> dict[str, str]:
    cells = page.eval_on_selector_all(
        "#totals tbody tr", "rows => rows.map(r => [r.dataset.variant, r.children[1].textContent])"
    )
    return dict(cells)


def test_the_endpoint_page_charts_every_variant_and_refreshes_itself(two_models: Store, page: Any) -> None:
    _endpoint(two_models)
    with running_server(two_models) as (client, _):
        _send(client, "VariantA", 12)
        _send(client, "VariantB", 7)
        base = str(client.base_url).rstrip("/")
        sign_in(page, base)
        listed = page.goto(f"{base}/console/endpoints")
        # the pages run under the policy (the page fixture fails the test on any violation of it)
        assert "script-src 'self'" in listed.headers["content-security-policy"]
        page.click("text=reviews")
        page.wait_for_url(f"{base}/console/endpoints/reviews")
        page.wait_for_selector("#metrics[data-loaded]")

        rows = client.get("/api/v1/endpoints/reviews/metrics", params={"period": 60}).json()["rows"]
        expected = {
            v: sum(r["Invocations"] for r in rows if r["variant"] == v) for v in ("VariantA", "VariantB")
        }
        assert expected == {"VariantA": 12, "VariantB": 7}
        assert _totals(page) == {"VariantA": "12", "VariantB": "7"}
        # every chart gets one line per variant (CPU and instances once the server has sampled them, each
        # second, which the page shows at its next refresh)
        page.wait_for_function(
            LINES_IN_EVERY_CHART, arg=[len(CHARTS), ["VariantA", "VariantB"]], timeout=15_000
        )
        invocations = page.locator('figure[data-metric="Invocations"] svg')
        assert invocations.locator("circle title").first.text_content().startswith("VariantA")
        # one color per variant on the whole page: the traffic bar and the lines agree
        bar = page.eval_on_selector('.traffic .share[data-variant="VariantB"]', "e => e.style.background")
        line = invocations.locator('polyline[data-variant="VariantB"]').get_attribute("stroke")
        assert bar.replace(" ", "") == _rgb(line)

        _send(client, "VariantA", 5)  # the page reads the new figures by itself within its refresh
        page.wait_for_function(SHOWS_TOTAL, arg=["VariantA", "17"], timeout=15_000)
        page.select_option("#period", "10")  # 10-second periods: more points, the same totals
        page.wait_for_function(SHOWS_TOTAL, arg=["VariantB", "7"])
        assert page.locator("#refreshed").text_content().startswith("updated")


def _rgb(hex_color: str | None) -> str:
    assert hex_color is not None and hex_color.startswith("#")
    red, green, blue = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({red},{green},{blue})"
