"""``loopwise workforce``: the private workforce's accounts, teams and API tokens."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from loopwise.cli._common import console, open_store, print_json, short_time

app = typer.Typer(help="The private workforce: the first admin, workers and their roles, teams, API tokens.")
worker_app = typer.Typer(help="Workers: create (with a temporary password), list, disable, enable.")
team_app = typer.Typer(help="Teams: create, add a worker, list.")
token_app = typer.Typer(help="API tokens for programs: create (shown once), list, revoke.")
app.add_typer(worker_app, name="worker")
app.add_typer(team_app, name="team")
app.add_typer(token_app, name="token")

Email = Annotated[str, typer.Argument(help="The worker's email address.")]


def _password(prompt: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))


@app.command()
def admin(
    email: Email,
    name: Annotated[
        str | None, typer.Option(help="The name shown (default: the email's local part).")
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create the first admin of a new installation (refused once an admin exists)."""
    from loopwise.workforce.service import create_admin

    password = _password("password for the admin", password_stdin)
    with open_store() as store:
        made = create_admin(store, email, password, name=name)
    console.print(f"admin {made.email} created; sign in at /console with this password")


@app.command()
def password(
    email: Email,
    stdin: Annotated[
        bool, typer.Option("--stdin", help="Read the old and the new password from stdin, a line each.")
    ] = False,
) -> None:
    """Change a password (a temporary one must be changed before any work)."""
    from loopwise.workforce.service import change_password

    if stdin:
        old, new = sys.stdin.readline().rstrip("\n"), sys.stdin.readline().rstrip("\n")
    else:
        old = str(typer.prompt("current password", hide_input=True))
        new = _password("new password", False)
    with open_store() as store:
        change_password(store, email, old, new)
    console.print(f"password of {email} changed; its sessions ended")


@worker_app.command("create")
def worker_create(
    email: Email,
    role: Annotated[
        str, typer.Option(help="admin, reviewer, worker, or service (a program: invokes endpoints).")
    ] = "worker",
    name: Annotated[
        str | None, typer.Option(help="The name shown (default: the email's local part).")
    ] = None,
    team: Annotated[
        list[str] | None, typer.Option("--team", help="A team to join; repeat for several.")
    ] = None,
) -> None:
    """Create an account with a temporary password, shown once: it must be changed at the first sign-in."""
    from loopwise.workforce.service import create_worker

    with open_store() as store:
        made, temporary = create_worker(store, email, role=role, name=name, teams=tuple(team or ()))
    console.print(f"{made.role} {made.email} created, teams: {', '.join(made.teams) or '-'}", highlight=False)
    console.print(f"temporary password (shown once): {temporary}", highlight=False)


@worker_app.command("list")
def worker_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the accounts: role, teams, whether a password change is due, disabled or locked."""
    from loopwise.workforce.service import list_workers

    with open_store() as store:
        workers = list_workers(store)
    if as_json:
        print_json(workers)
        return
    table = Table("email", "name", "role", "teams", "state", "created")
    for w in workers:
        state = "disabled" if w.disabled else ("must change password" if w.must_change_password else "active")
        table.add_row(w.email, w.name, w.role, ", ".join(w.teams), state, short_time(w.created_at))
    console.print(table)


@worker_app.command("reset-password")
def worker_reset_password(email: Email) -> None:
    """Give an account a new temporary password, shown once (to be changed at the next sign-in); every
    session of the account ends (a running server refuses them within a few seconds)."""
    from loopwise.workforce.service import reset_password

    with open_store() as store:
        worker, temporary = reset_password(store, email)
    console.print(f"password of {worker.email} reset; its sessions ended", highlight=False)
    console.print(f"temporary password (shown once): {temporary}", highlight=False)


@worker_app.command("disable")
def worker_disable(email: Email) -> None:
    """Disable an account: its sessions end and its API tokens are revoked."""
    from loopwise.workforce.service import set_disabled

    with open_store() as store:
        set_disabled(store, email, True)
    console.print(f"{email} disabled; its sessions ended and its tokens revoked")


@worker_app.command("enable")
def worker_enable(email: Email) -> None:
    """Enable a disabled account again (old sessions and tokens stay ended)."""
    from loopwise.workforce.service import set_disabled

    with open_store() as store:
        set_disabled(store, email, False)
    console.print(f"{email} enabled")


@team_app.command("create")
def team_create(name: Annotated[str, typer.Argument(help="The team's name.")]) -> None:
    """Create a team."""
    from loopwise.workforce.service import create_team

    with open_store() as store:
        create_team(store, name)
    console.print(f"team {name} created")


@team_app.command("add")
def team_add(name: Annotated[str, typer.Argument(help="The team.")], email: Email) -> None:
    """Add a worker to a team."""
    from loopwise.workforce.service import add_to_team

    with open_store() as store:
        team = add_to_team(store, name, email)
    console.print(f"team {team.name}: {', '.join(team.members)}", highlight=False)


@team_app.command("list")
def team_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the teams and their members."""
    from loopwise.workforce.service import list_teams

    with open_store() as store:
        teams = list_teams(store)
    if as_json:
        print_json(teams)
        return
    table = Table("team", "members")
    for t in teams:
        table.add_row(t.name, ", ".join(t.members))
    console.print(table)


@token_app.command("create")
def token_create(
    email: Email, name: Annotated[str, typer.Option("--name", help="What the token is for, e.g. etl.")]
) -> None:
    """Create an API token for a worker's account, shown once (send it as Authorization: Bearer ...)."""
    from loopwise.workforce.service import create_token

    with open_store() as store:
        token = create_token(store, email, name)
    console.print(f"API token {name} of {email} (shown once): {token}", highlight=False)


@token_app.command("list")
def token_list(
    email: Annotated[str | None, typer.Argument(help="Only this worker's tokens (default: all).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List API tokens: id, account, name, created, last used (to the minute), revoked; never secrets."""
    from loopwise.workforce.service import list_tokens

    with open_store() as store:
        tokens = list_tokens(store, email)
    if as_json:
        print_json([t.to_dict() for t in tokens])
        return
    table = Table("id", "email", "name", "created", "last used", "state")
    for t in tokens:
        state = f"revoked {short_time(t.revoked_at)}" if t.revoked_at else "live"
        used = short_time(t.last_used_at) if t.last_used_at else "never"
        table.add_row(str(t.id), t.email, t.name, short_time(t.created_at), used, state)
    console.print(table)


@token_app.command("revoke")
def token_revoke(
    email: Annotated[str | None, typer.Argument(help="The worker's email (with --name).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="The token's name.")] = None,
    token_id: Annotated[
        int | None, typer.Option("--id", help="The token's id (see `token list`), instead of EMAIL --name.")
    ] = None,
) -> None:
    """Revoke an API token, by EMAIL --name NAME or by --id (a running server refuses it within a few
    seconds; one that revokes it through its API, at once)."""
    from loopwise.workforce.service import revoke_token

    if token_id is None and (email is None or name is None):
        raise typer.BadParameter("give EMAIL --name NAME, or --id ID (see `loopwise workforce token list`)")
    with open_store() as store:
        revoked = revoke_token(store, email, name, token_id=token_id)
    if token_id is not None:
        console.print(f"token {token_id} revoked" if revoked else f"token {token_id} was revoked already")
        return
    console.print(f"token {name} of {email} revoked" if revoked else f"{email} has no live token {name}")
