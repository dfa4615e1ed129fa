"""Temporary AWS credentials, and how long what they sign stays valid.

A presigned URL works until the earlier of its own lifetime (``X-Amz-Expires``) and the end
of the session whose credentials signed it. Instance profiles, SSO and assumed roles give
sessions of often 1-6 h, so a URL asked for 12 h would stop working hours before the expiry
that ``urls.tsv`` shows. Capping the lifetime at the session's end makes what is written true.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger(__name__)

ISO_UTC = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Temporary:
    """Session credentials; ``expires`` is None when their end is not known (a bare token)."""

    expires: datetime | None


def temporary_credentials(client: Any) -> Temporary | None:
    """The client's credentials if they are temporary (have a session token), else None.

    botocore keeps them on the client's signer (no public accessor). Refreshable ones
    (instance profile, SSO, ``credential_process`` with ``Expiration``, assumed roles) know
    their end; reading them first refreshes those about to expire, as signing would.
    """
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if credentials is None:
        return None
    if not credentials.get_frozen_credentials().token:
        return None
    expiry = getattr(credentials, "_expiry_time", None)
    return Temporary(expiry if isinstance(expiry, datetime) else None)


def cap_to_credentials(client: Any, expires_s: int, now: datetime | None = None) -> int:
    """``expires_s``, or less: the seconds left of the temporary credentials that sign.

    One line says when the lifetime is capped, or that a session token's end is unknown.
    """
    session = temporary_credentials(client)
    if session is None:
        return expires_s
    if session.expires is None:
        log.warning(
            "presigned URLs: the AWS credentials are temporary (a session token) of unknown "
            "lifetime; the URLs stop working when that session ends, maybe before %d s",
            expires_s,
        )
        return expires_s
    left = int((session.expires - (now or datetime.now(UTC))).total_seconds())
    if left >= expires_s:
        return expires_s
    capped = max(1, left)
    log.warning(
        "presigned URLs: valid %d s, not the %d s asked: the temporary AWS credentials that "
        "sign them expire at %s (sign with long-term credentials for longer-lived URLs)",
        capped,
        expires_s,
        session.expires.astimezone(UTC).strftime(ISO_UTC),
    )
    return capped
