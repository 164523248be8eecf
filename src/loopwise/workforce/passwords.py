"""Passwords: argon2id (memory-hard; argon2-cffi's RFC 9106 low-memory profile: 64 MiB, 3 passes), the
policy a new password must meet, and temporary passwords for new workers."""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from loopwise.errors import AccountError

MIN_LENGTH = 10
MAX_LENGTH = 256
_HASHER = PasswordHasher()


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    """Whether ``password`` matches ``hashed`` (False for a mismatch or a hash that is not argon2's)."""
    try:
        return bool(_HASHER.verify(hashed, password))
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(hashed: str) -> bool:
    """Whether ``hashed`` was made with other parameters than today's (re-hash at the next sign-in)."""
    return bool(_HASHER.check_needs_rehash(hashed))


def temporary_password() -> str:
    """A random password for a new account, to be changed at the first sign-in (96 bits)."""
    return secrets.token_urlsafe(12)


def check_policy(password: str, email: str) -> None:
    """Refuse a password that is too short, too long, the email itself, or one repeated character."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"at least {MIN_LENGTH} characters (got {len(password)})")
    if len(password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters")
    if password.strip().lower() == email.strip().lower():
        problems.append("not the email address")
    if password and len(set(password)) == 1:
        problems.append("not one character repeated")
    if problems:
        raise AccountError("the password must be " + "; ".join(problems))
