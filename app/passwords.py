"""Password hashing (argon2id) and the password policy."""

from __future__ import annotations

import gzip
import secrets
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # the sign-in form's limit
_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs as much time as a wrong password.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
# The 20,000 most common passwords, lower-cased, as Django ships them (BSD-3-Clause; source and
# licence in app/data/COMMON-PASSWORDS-LICENSE). A file in the package: no download at run time.
COMMON_PASSWORDS_FILE = Path(__file__).resolve().parent / "data" / "common-passwords.txt.gz"
# Marks an account whose password is to be set through a link: never a valid argon2 hash.
UNUSABLE_PREFIX = "!"


class PasswordPolicyError(ValueError):
    """The password does not meet the policy."""


def check_password_policy(password: str) -> None:
    """Raise PasswordPolicyError if ``password`` is too weak."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"must be at least {MIN_PASSWORD_LENGTH} characters long")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(f"must be at most {MAX_PASSWORD_LENGTH} characters long")
    if password.strip() != password:
        raise PasswordPolicyError("must not start or end with whitespace")
    if password.lower() in common_passwords():
        raise PasswordPolicyError("is one of the most common passwords; choose another")


@cache
def common_passwords() -> frozenset[str]:
    """Return the bundled list of common passwords (lower-case), read once."""
    with gzip.open(COMMON_PASSWORDS_FILE, "rt", encoding="utf-8") as lines:
        return frozenset(line.strip() for line in lines if line.strip())


def hash_password(password: str) -> str:
    """Return the argon2id hash of ``password``."""
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check ``password`` against ``password_hash``; a missing hash still costs one verification."""
    stored = password_hash or _DUMMY_HASH
    usable = stored is password_hash and not stored.startswith(UNUSABLE_PREFIX)
    try:
        return _hasher.verify(stored if usable else _DUMMY_HASH, password) and usable
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """Tell whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(password_hash)


def generate_password() -> str:
    """Return a random password that meets the policy."""
    return secrets.token_urlsafe(15)


def unusable_password() -> str:
    """Return a stored value no password matches, new each time (for set-password links)."""
    return UNUSABLE_PREFIX + secrets.token_urlsafe(24)
