"""The private workforce: accounts with roles, teams, passwords (argon2id), sessions and API tokens."""

from loopwise.workforce.accounts import ROLES, Role, Team, Worker

__all__ = ["ROLES", "Role", "Team", "Worker"]
