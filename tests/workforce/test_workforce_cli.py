"""``loopwise workforce`` as users run it, as a process: the first admin, a worker with a temporary
password in a team, the password changed, a token, disabling; refusals say what was wrong."""

from __future__ import annotations

import json
from pathlib import Path

from cli_helpers import run


def test_the_workforce_commands(tmp_path: Path) -> None:
    home = tmp_path / "home"
    made = run(
        home, "workforce", "admin", "root@shop.example", "--password-stdin", input="correct horse battery\n"
    )
    assert "admin root@shop.example created" in made.stdout
    again = run(
        home,
        "workforce",
        "admin",
        "two@shop.example",
        "--password-stdin",
        input="another long one\n",
        check=False,
    )
    assert again.returncode == 1 and "an admin exists already" in again.stderr

    assert "team labelers created" in run(home, "workforce", "team", "create", "labelers").stdout
    created = run(home, "workforce", "worker", "create", "ann@shop.example", "--team", "labelers").stdout
    temporary = created.split("temporary password (shown once): ")[1].split()[0]
    assert "worker ann@shop.example created, teams: labelers" in created and len(temporary) >= 16
    listed = json.loads(run(home, "workforce", "worker", "list", "--json").stdout)
    ann = next(w for w in listed if w["email"] == "ann@shop.example")
    assert ann["must_change_password"] and ann["teams"] == ["labelers"] and "password_hash" not in ann

    weak = run(
        home,
        "workforce",
        "password",
        "ann@shop.example",
        "--stdin",
        input=f"{temporary}\nshort\n",
        check=False,
    )
    assert weak.returncode == 1 and "at least 10 characters" in weak.stderr
    changed = run(
        home, "workforce", "password", "ann@shop.example", "--stdin", input=f"{temporary}\nann's own secret\n"
    )
    assert "password of ann@shop.example changed" in changed.stdout
    wrong = run(
        home,
        "workforce",
        "password",
        "ann@shop.example",
        "--stdin",
        input=f"{temporary}\nwhatever else\n",
        check=False,
    )
    assert wrong.returncode == 1 and "wrong email or password" in wrong.stderr

    token = run(home, "workforce", "token", "create", "ann@shop.example", "--name", "etl").stdout
    assert "(shown once): lw_" in token
    assert "disabled" in run(home, "workforce", "worker", "disable", "ann@shop.example").stdout
    table = run(home, "workforce", "worker", "list").stdout
    assert "ann@shop.example" in table and "disabled" in table
    # disabling revoked the token already
    revoked = run(home, "workforce", "token", "revoke", "ann@shop.example", "--name", "etl").stdout
    assert "ann@shop.example has no live token etl" in revoked
    unknown = run(home, "workforce", "team", "add", "ghosts", "ann@shop.example", check=False)
    assert unknown.returncode == 1 and "no team 'ghosts'" in unknown.stderr
    teams = json.loads(run(home, "workforce", "team", "list", "--json").stdout)
    assert teams == [{"id": teams[0]["id"], "name": "labelers", "members": ["ann@shop.example"]}]
