"""The long fuzzing run: the standing test's set-up (tests/fuzz_helpers.py) with many more examples, as
an admin and as each other role, on SQLite and on PostgreSQL; writes benchmarks/results/fuzz.json.

Per database: ``requests``, ``operations`` (API operations exercised), ``server_errors`` (status >= 500,
target 0), ``unauthorized`` (2xx answers a role got for a route the permission table
``loopwise.api.auth.POLICY`` gives a permission the role lacks, target 0), ``nonconforming`` (answers
outside the OpenAPI document), and the same per role; the first few failures are kept as curl commands.

    python benchmarks/fuzz.py [--examples N] [--role-examples N] [--scenarios N] [--databases sqlite ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

POSTGRES_URL = os.environ.get(
    "LOOPWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
ROLES = ("reviewer", "worker", "service")


def _database_url(kind: str) -> tuple[str | None, str | None]:
    """The store's URL (None: SQLite in the home) and the PostgreSQL schema made for the run."""
    if kind == "sqlite":
        return None, None
    import psycopg

    schema = f"fuzz_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", schema


def _drop(schema: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES_URL.replace("+psycopg", ""), autocommit=True) as connection:
        connection.execute(f"DROP SCHEMA {schema} CASCADE")


def run_database(kind: str, examples: int, role_examples: int, scenarios: int) -> dict[str, Any]:
    from auth_helpers import admin_token, bearer
    from fuzz_helpers import TEAM, Tally, fuzz, seed
    from loopwise.app import background_server
    from loopwise.config import Settings
    from loopwise.storage import Store
    from loopwise.workforce import service as workforce

    url, schema = _database_url(kind)
    try:
        with tempfile.TemporaryDirectory() as home:
            settings = Settings(home=Path(home) / "home", **({"database_url": url} if url else {}))
            store = Store.open(settings)
            try:
                seeded = seed(store, Path(home))
                tokens = {"admin": bearer(admin_token(store))}
                for role in ROLES:
                    email = f"{role}@example.com"
                    workforce.create_worker(store, email, role=role, teams=(TEAM,))
                    tokens[role] = bearer(workforce.create_token(store, email, "fuzz"))
                tallies: dict[str, Tally] = {}
                started = time.monotonic()
                with background_server(store) as (base, _):
                    for role, headers in tokens.items():
                        many = examples if role == "admin" else role_examples
                        steps = scenarios if role == "admin" else scenarios // 4
                        tallies[role] = fuzz(
                            base,
                            headers,
                            examples=many,
                            steps=steps,
                            role=role,
                            schema_headers=tokens["admin"],
                            progress=500,
                            seeded=seeded,
                        )
                        print(kind, role, tallies[role].summary(), flush=True)
                seconds = time.monotonic() - started
            finally:
                store.close()
    finally:
        if schema is not None:
            _drop(schema)
    everything = {op for t in tallies.values() for op in t.operations}
    return {
        "requests": sum(t.requests for t in tallies.values()),
        "operations": len(everything),
        "server_errors": sum(len(t.server_errors) for t in tallies.values()),
        "unauthorized": sum(len(t.unauthorized) for t in tallies.values()),
        "nonconforming": sum(len(t.nonconforming) for t in tallies.values()),
        "seconds": round(seconds, 1),
        "by_role": {role: t.summary() for role, t in tallies.items()},
        "failures": [f for t in tallies.values() for f in (t.server_errors + t.unauthorized)][:20],
    }


def _write(path: Path, document: dict[str, Any]) -> None:
    """Write ``document``, keeping the other databases' results of a run made in parallel (one process
    per database: ``--databases sqlite`` and ``--databases postgresql`` at once)."""
    import fcntl

    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.exists():
            earlier = json.loads(path.read_text(encoding="utf-8"))
            if earlier.get("settings") == document["settings"]:
                document["databases"] = {**earlier.get("databases", {}), **document["databases"]}
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    path.with_suffix(".lock").unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--examples", type=int, default=60, help="per operation and mode, as the admin")
    parser.add_argument("--role-examples", type=int, default=15, help="per operation and mode, other roles")
    parser.add_argument("--scenarios", type=int, default=100, help="stateful scenarios as the admin")
    parser.add_argument("--databases", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fuzz.json")
    args = parser.parse_args()
    results = {
        kind: run_database(kind, args.examples, args.role_examples, args.scenarios) for kind in args.databases
    }
    import schemathesis

    document = {
        "benchmark": "fuzz",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/fuzz.py "
        + " ".join(
            f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k not in ("databases", "out")
        ),
        "schemathesis": schemathesis.__version__,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "settings": {
            "examples": args.examples,
            "role_examples": args.role_examples,
            "scenarios": args.scenarios,
        },
        "databases": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    _write(args.out, document)
    print(
        json.dumps(
            {
                k: {m: v[m] for m in ("requests", "operations", "server_errors", "unauthorized")}
                for k, v in results.items()
            }
        )
    )


if __name__ == "__main__":
    main()
