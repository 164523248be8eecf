"""The standing fuzzing test: schemathesis over the server's whole OpenAPI document (the invocations
route included), stateless and then stateful from real objects, against a real server on 127.0.0.1 on
SQLite and PostgreSQL, as an admin. Not one answer may be a server error; answers conform to the
document (status, content type, error shape). Derandomized: the same requests every run."""

from __future__ import annotations

from pathlib import Path

from auth_helpers import admin_token, bearer
from fuzz_helpers import fuzz, seed
from loopwise.app import background_server
from loopwise.storage import Store

#: per operation and mode (valid, invalid); stateful scenarios: 744 requests, ~20 s a database (2 cores)
EXAMPLES = 10
SCENARIOS = 20


def test_the_whole_api_answers_fuzzing_without_a_server_error(store: Store, tmp_path: Path) -> None:
    seeded = seed(store, tmp_path)
    headers = bearer(admin_token(store))
    with background_server(store) as (url, _):
        tally = fuzz(url, headers, examples=EXAMPLES, steps=SCENARIOS, seeded=seeded)
    summary = tally.summary()
    print(summary)  # shown with -s: what the run exercised
    assert summary["operations"] >= 36, summary  # every operation, the invocations route included
    assert "POST /endpoints/{name}/invocations" in tally.operations
    assert not tally.server_errors, "\n\n".join(tally.server_errors[:10])
    assert not tally.nonconforming, "\n\n".join(tally.nonconforming[:10])
    assert not tally.unauthorized, "\n\n".join(tally.unauthorized[:10])
    # the seeded objects were reached (no random name finds them)
    reached = {
        "GET /api/v1/review/loops/{name}",
        "GET /api/v1/review/flows/{name}",
        "GET /api/v1/endpoints/{name}",
        "POST /endpoints/{name}/invocations",
    }
    assert reached <= tally.succeeded, (seeded, sorted(tally.succeeded))
