"""Console accounts: argon2id passwords, sessions (the cookie holds a random token; the
database keeps its SHA-256), a CSRF token per session, and a limit on failed sign-ins per
source address."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from clarion.emails import EMAIL
from clarion.errors import InvalidRequest
from clarion.ids import uuid7
from clarion.storage.models import Admin, ConsoleSession, LoginFailure, utcnow

HASHER = PasswordHasher()  # argon2id with the library's recommended parameters
MIN_PASSWORD = 12
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5  # per source address and window
# Verifying against this when the e-mail is unknown takes as long as a real check, so the
# answer's timing does not tell which accounts exist.
_DUMMY_HASH = HASHER.hash(secrets.token_hex(16))


def create_admin(session: Session, email: str, password: str) -> Admin:
    email = email.strip().lower()
    if not EMAIL.fullmatch(email):
        raise InvalidRequest("email: give the admin's e-mail address", code="invalid_email")
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"password: use at least {MIN_PASSWORD} characters",
                             code="weak_password")  # fmt: skip
    if session.scalar(select(Admin).where(Admin.email == email)) is not None:
        raise InvalidRequest(f"an admin {email} exists already", code="admin_exists")
    admin = Admin(id=uuid7(), email=email, password_hash=HASHER.hash(password), created_at=utcnow())
    session.add(admin)
    session.flush()
    return admin


def any_admin(session: Session) -> bool:
    return session.scalar(select(func.count()).select_from(Admin)) != 0


def check_password(session: Session, email: str, password: str) -> Admin | None:
    admin = session.scalar(select(Admin).where(Admin.email == email.strip().lower()))
    try:
        HASHER.verify(admin.password_hash if admin else _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return None
    return admin


# -- the failed sign-in limit -------------------------------------------------------------
def blocked_for(session: Session, source: str) -> timedelta | None:
    """How long this address must wait, when it has failed too often lately."""
    since = utcnow() - FAILURE_WINDOW
    times = session.scalars(
        select(LoginFailure.at)
        .where(LoginFailure.source == source, LoginFailure.at > since)
        .order_by(LoginFailure.at)
    ).all()
    if len(times) < MAX_FAILURES:
        return None
    return times[-MAX_FAILURES] + FAILURE_WINDOW - utcnow()


def record_failure(session: Session, source: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - FAILURE_WINDOW))
    session.add(LoginFailure(source=source, at=utcnow()))


def clear_failures(session: Session, source: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.source == source))


# -- sessions -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SignedIn:
    admin_id: str
    email: str
    csrf: str


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, admin: Admin, hours: float) -> str:
    """A new session; returns the cookie's token."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ConsoleSession(
            id=_digest(token),
            admin_id=admin.id,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            expires_at=now + timedelta(hours=hours),
        )
    )
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
    return token


def load_session(session: Session, token: str | None) -> SignedIn | str | None:
    """The signed-in admin; None without a session; "expired" for one that ran out."""
    if not token:
        return None
    row = session.get(ConsoleSession, _digest(token))
    if row is None:
        return None
    if row.expires_at <= utcnow():
        return "expired"
    admin = session.get(Admin, row.admin_id)
    return SignedIn(admin.id, admin.email, row.csrf) if admin else None


def close_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(ConsoleSession).where(ConsoleSession.id == _digest(token)))


def same_token(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())
