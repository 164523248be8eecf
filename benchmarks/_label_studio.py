"""Label Studio for ``labeling_load.py``: its own environment, its two set-ups started on 127.0.0.1, and the
counts of what it stored.

The set-ups (``SETUPS``):

- ``dev``: how the first comparison ran it (2026-12-04 and -06): ``label-studio start`` (Django's
  development server, one process), SQLite in a temporary folder, one preset user whose token every
  client shares. Label Studio locks a task per user, so one user shared by 50 clients is handed tasks that
  user is already annotating: its latencies and counts describe that set-up, not a team's.
- ``production``: as its Docker image serves it: uWSGI on ``core.wsgi:application`` (a master and one
  process per core, one thread each, with the options of its ``deploy/uwsgi.ini`` that bear on a run:
  thunder lock, lazy apps, 64 KiB buffers, post buffering, harakiri, no request log) and HTTP keep-alive,
  on PostgreSQL (a fresh database ``label_studio_bench_<hex>`` on the local server, migrated first and
  dropped afterwards), with one annotator account and token per client (members of one organization)
  and an admin who makes the projects and reads the export. No nginx in front: the clients speak to
  uWSGI's HTTP router, as they speak to ``loopwise server``.

``deploy`` yields a running set-up; ``create_project`` makes a project asking three annotations per task;
``tally`` counts, from the project's JSON export, what the clients were told was stored against what is.
Never a loopwise dependency: everything of Label Studio's runs in benchmarks/.venvs/label-studio.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from _common import free_port, stop, wait_http

SETUPS = ("dev", "production")
REQUIREMENTS = ("label-studio==1.23.*", "pyuwsgi==2.0.*")
ANSWERS_PER_TASK = 3
LABEL_CONFIG = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text" choice="single">
    <Choice value="1"/><Choice value="0"/><Choice value="-1"/>
  </Choices>
</View>"""
# Run in Label Studio's own interpreter: migrate, then an organization with an admin and the annotators, each
# with the token Label Studio makes for a new user. Their passwords are unusable: they sign in by token.
# Written to a file: Label Studio's settings print to stdout on import.
_PREPARE = """
import json, sys
from label_studio.server import _setup_env
_setup_env()
from django.core.management import call_command
call_command('migrate', '--no-color', verbosity=0)
from organizations.models import Organization
from users.models import User
spec = json.loads(sys.argv[1])
admin = User.objects.create_user(email='admin@example.com')
admin.is_staff = admin.is_superuser = True
admin.save()
org = Organization.create_organization(created_by=admin, title='bench', legacy_api_tokens_enabled=True)
admin.active_organization = org
admin.save(update_fields=['active_organization'])
tokens = []
for i in range(spec['annotators']):
    user = User.objects.create_user(email=f'annotator{i}@example.com')
    org.add_user(user)
    user.active_organization = org
    user.save(update_fields=['active_organization'])
    tokens.append(user.auth_token.key)
with open(spec['out'], 'w') as out:
    json.dump({'admin': admin.auth_token.key, 'annotators': tokens}, out)
"""


@dataclass(frozen=True)
class Deployment:
    """A running set-up: its URL, the admin's Authorization header, and one header per client."""

    setup: str
    url: str
    admin: str
    clients: list[str]
    server: str  # what serves it, in words, for the results


def environment() -> Path:
    """Label Studio's virtual environment, made once under benchmarks/.venvs (git-ignored)."""
    venv = Path(__file__).resolve().parent / ".venvs" / "label-studio"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "label-studio").exists() or not (venv / "bin" / "uwsgi").exists():
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
    return venv


def _package_dir(venv: Path) -> Path:
    """The installed ``label_studio`` package: uWSGI runs from there, as from /label-studio/label_studio in
    the image, so that its settings' ``core...`` imports resolve."""
    found = sorted(venv.glob("lib/python3*/site-packages/label_studio"))
    if not found:
        raise RuntimeError(f"label_studio is not installed in {venv}")
    return found[-1]


@contextmanager
def deploy(setup: str, clients: int, postgres_url: str) -> Iterator[Deployment]:
    """Start the set-up ``setup`` (one of ``SETUPS``) for ``clients`` clients; stop it (and drop its
    database) on leaving. ``postgres_url``: a server where the production set-up may create a database."""
    if setup not in SETUPS:
        raise ValueError(f"setup: {setup!r} is not one of {', '.join(SETUPS)}")
    venv = environment()
    with tempfile.TemporaryDirectory() as data:
        env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": data, "SENTRY_DSN": "", "FRONTEND_SENTRY_DSN": ""}
        env["LATEST_VERSION_CHECK"] = "false"  # no call to PyPI from a benchmark
        env.pop("DATABASE_URL", None)
        if setup == "dev":
            with _dev(venv, env, clients) as deployment:
                yield deployment
        else:
            with _production(venv, env, clients, postgres_url) as deployment:
                yield deployment


@contextmanager
def _dev(venv: Path, env: dict[str, str], clients: int) -> Iterator[Deployment]:
    token = uuid.uuid4().hex
    env |= {
        "LABEL_STUDIO_USERNAME": "bench@example.com",
        "LABEL_STUDIO_PASSWORD": "bench-passw0rd-123",
        "LABEL_STUDIO_USER_TOKEN": token,
        "LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK": "true",
        "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
    }
    port = free_port()
    command = [str(venv / "bin" / "label-studio"), "start", "--no-browser", "--port", str(port)]
    command += ["--internal-host", "127.0.0.1"]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", server, timeout=600)
        server_words = "label-studio start (Django's development server), SQLite"
        yield Deployment("dev", url, f"Token {token}", [f"Token {token}"] * clients, server_words)
    finally:
        stop(server)


@contextmanager
def _production(venv: Path, env: dict[str, str], clients: int, postgres_url: str) -> Iterator[Deployment]:
    import psycopg

    parts = urlsplit(postgres_url.replace("+psycopg", ""))
    admin_url = parts._replace(path="/postgres").geturl()
    database = f"label_studio_bench_{uuid.uuid4().hex[:10]}"
    env |= {
        "DJANGO_DB": "default",
        "POSTGRE_HOST": parts.hostname or "127.0.0.1",
        "POSTGRE_PORT": str(parts.port or 5432),
        "POSTGRE_NAME": database,
        "POSTGRE_USER": unquote(parts.username or "postgres"),
        "POSTGRE_PASSWORD": unquote(parts.password or ""),
    }
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    server: subprocess.Popen[bytes] | None = None
    try:
        out = Path(env["LABEL_STUDIO_BASE_DATA_DIR"]) / "tokens.json"
        spec = json.dumps({"annotators": clients, "out": str(out)})
        prepared = subprocess.run(
            [str(venv / "bin" / "python"), "-c", _PREPARE, spec],
            env=env, capture_output=True, text=True, timeout=1200,
        )  # fmt: skip
        if prepared.returncode != 0:
            raise RuntimeError(f"Label Studio's migrations or accounts failed: {prepared.stderr[-3000:]}")
        tokens = json.loads(out.read_text())
        port = free_port()
        processes = os.cpu_count() or 1
        command = [
            str(venv / "bin" / "uwsgi"),
            f"--http=127.0.0.1:{port}",
            "--http-keepalive",
            "--http-timeout=300",
            "--module=core.wsgi:application",
            "--master",
            f"--processes={processes}",
            "--threads=1",
            "--single-interpreter",
            "--enable-threads",
            "--thunder-lock",
            "--lazy-apps",
            "--need-app",
            "--die-on-term",
            "--buffer-size=65535",
            "--post-buffering=4096",
            "--harakiri=120",
            "--max-requests=5000",
            "--disable-logging",
        ]
        server_env = env | {"DJANGO_SETTINGS_MODULE": "core.settings.label_studio"}
        server = subprocess.Popen(
            command, cwd=_package_dir(venv), env=server_env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/health", server, timeout=600)
        clients_headers = [f"Token {token}" for token in tokens["annotators"]]
        server_words = f"uWSGI, {processes} processes x 1 thread, PostgreSQL"
        yield Deployment("production", url, f"Token {tokens['admin']}", clients_headers, server_words)
    finally:
        if server is not None:
            stop(server)
        with psycopg.connect(admin_url, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def create_project(deployment: Deployment, items: int, title: str) -> int:
    """A project asking three annotations per task, with ``items`` tasks; returns its id."""
    import httpx

    headers = {"Authorization": deployment.admin}
    with httpx.Client(base_url=deployment.url, headers=headers, timeout=300) as admin:
        answer = admin.post(
            "/api/projects/",
            json={"title": title, "label_config": LABEL_CONFIG, "maximum_annotations": ANSWERS_PER_TASK},
        )
        answer.raise_for_status()
        project = int(answer.json()["id"])
        tasks = [{"text": f"review {i}: it fits and the color is lovely"} for i in range(items)]
        admin.post(f"/api/projects/{project}/import", json=tasks).raise_for_status()
    return project


def tally(deployment: Deployment, project: int, acks: list[Any], items: int) -> dict[str, Any]:
    """What the clients were told against what the project's JSON export holds, counted as for loopwise:
    ``lost``, annotations acknowledged (2xx) but not in the export plus the annotations a task lacks of its
    three; ``duplicated``, a second annotation of one task by one user plus annotations beyond a task's
    three. ``acks``: (task id, HTTP status, annotation id) per submit."""
    import httpx

    headers = {"Authorization": deployment.admin}
    with httpx.Client(base_url=deployment.url, headers=headers, timeout=300) as admin:
        answer = admin.get(f"/api/projects/{project}/export", params={"exportType": "JSON"})
        answer.raise_for_status()
        exported = answer.json()
    stored = {a["id"]: (task["id"], a["completed_by"]) for task in exported for a in task["annotations"]}
    acknowledged = [annotation for _, status, annotation in acks if status in (200, 201)]
    per_task = Counter(task for task, _ in stored.values())
    per_user = Counter(stored.values())
    not_stored = sum(annotation not in stored for annotation in acknowledged)
    short = sum(max(0, ANSWERS_PER_TASK - per_task[task["id"]]) for task in exported)
    beyond = sum(max(0, n - ANSWERS_PER_TASK) for n in per_task.values())
    same_user = sum(n - 1 for n in per_user.values() if n > 1)
    return {
        "annotations_acknowledged": len(acknowledged),
        "annotations_stored": len(stored),
        "refused": Counter(status for _, status, _ in acks if status not in (200, 201)),
        "acknowledged_not_stored": not_stored,
        "annotations_short_of_three": short,
        "beyond_three": beyond,
        "same_user_twice": same_user,
        "lost": not_stored + short,
        "duplicated": beyond + same_user,
        "every_task_has_its_annotations": len(exported) == items
        and all(per_task[task["id"]] == ANSWERS_PER_TASK for task in exported),
    }
