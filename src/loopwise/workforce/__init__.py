"""The private workforce: accounts with roles, teams, passwords (argon2id), sessions and API tokens."""

from loopwise.workforce.records import ROLES, ApiToken, Role, Team, Worker

__all__ = ["ROLES", "ApiToken", "Role", "Team", "Worker"]
