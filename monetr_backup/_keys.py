"""age recipient and identity texts -> pyrage's key objects, with errors that quote no key.

A recipient is a public key: ``age1...`` (X25519) or an SSH public key line
(``ssh-ed25519 AAAA... comment``, ``ssh-rsa ...``). An identity is what opens the archive:
an ``AGE-SECRET-KEY-1...`` line, the text of an identity file as ``age-keygen`` writes it
(comments and several keys allowed), or an unencrypted SSH private key (OpenSSH or PEM).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
from collections.abc import Iterable, Sequence

import pyrage
from pydantic import SecretStr

__all__ = [
    "Identity",
    "Recipient",
    "identities_from",
    "parse_identity",
    "parse_recipient",
    "recipient_fingerprint",
    "recipients_from",
]

Recipient = pyrage.x25519.Recipient | pyrage.ssh.Recipient
Identity = pyrage.x25519.Identity | pyrage.ssh.Identity

_SSH_PUBLIC = ("ssh-ed25519 ", "ssh-rsa ")
_AGE_SECRET = "AGE-SECRET-KEY-1"
_WHAT_RECIPIENT = (
    "a recipient is an age public key (age1...) or an SSH public key "
    "(ssh-ed25519 ... or ssh-rsa ...)"
)
_WHAT_IDENTITY = (
    "an identity is an age secret key (AGE-SECRET-KEY-1...), the text of an age identity "
    "file, or an unencrypted SSH private key"
)


def parse_recipient(text: str) -> Recipient:
    """The recipient ``text`` names; ``ValueError`` saying what it is not, if none."""
    text = text.strip()
    try:
        if text.startswith("age1"):
            return pyrage.x25519.Recipient.from_str(text)
        if text.startswith(_SSH_PUBLIC):
            return pyrage.ssh.Recipient.from_str(text)
    except pyrage.RecipientError as exc:
        # pyrage's reasons ("invalid Bech32 encoding") name the defect, not the text.
        raise ValueError(f"not a valid recipient ({exc}); {_WHAT_RECIPIENT}") from None
    raise ValueError(_WHAT_RECIPIENT)


def parse_identity(text: str) -> list[Identity]:
    """The identities in ``text`` (an identity file may hold several).

    Errors never quote the text, nor pyrage's reason: both could hold key material.
    """
    stripped = text.strip()
    if stripped.startswith("-----BEGIN"):
        try:
            return [pyrage.ssh.Identity.from_buffer(stripped.encode() + b"\n")]
        except pyrage.IdentityError as exc:
            if "decrypted" in str(exc):
                raise ValueError(
                    "an SSH private key protected by a passphrase cannot be used: give an "
                    "unencrypted copy (ssh-keygen -p), kept off the backup host"
                ) from None
            raise ValueError(f"not a valid SSH private key; {_WHAT_IDENTITY}") from None
    found: list[Identity] = []
    for raw in stripped.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(_AGE_SECRET):
            raise ValueError(_WHAT_IDENTITY)
        try:
            found.append(pyrage.x25519.Identity.from_str(line))
        except pyrage.IdentityError:
            raise ValueError(f"not a valid age secret key; {_WHAT_IDENTITY}") from None
    if not found:
        raise ValueError(f"no key in it; {_WHAT_IDENTITY}")
    return found


def identities_from(values: Iterable[SecretStr | str]) -> list[Identity]:
    """Every identity in ``values``; a ``ValueError`` names which one is wrong, by index."""
    found: list[Identity] = []
    for index, value in enumerate(values):
        if not isinstance(value, SecretStr | str):
            raise TypeError(
                f"identities[{index}] must be SecretStr or str, not {type(value).__name__}"
            )
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        try:
            found += parse_identity(text)
        except ValueError as exc:
            raise ValueError(f"identities[{index}]: {exc}") from None
    return found


def recipient_fingerprint(recipient: str) -> str:
    """``SHA256:<base64>`` naming a recipient without spelling it out (for records that
    list recipients, such as the catalog entry).

    An SSH public key (``ssh-ed25519 AAAA... comment``) gets OpenSSH's own fingerprint,
    the one ``ssh-keygen -lf`` prints, so an operator can match it to a key file; any
    other recipient (an age ``age1...`` key) the SHA-256 of its text.
    """
    text = recipient.strip()
    words = text.split()
    digest_of: bytes = text.encode()
    if len(words) >= 2 and words[0].startswith(("ssh-", "ecdsa-", "sk-")):
        with contextlib.suppress(binascii.Error):
            digest_of = base64.b64decode(words[1], validate=True)
    digest = hashlib.sha256(digest_of).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def recipients_from(values: Sequence[str]) -> list[Recipient]:
    """Every recipient in ``values`` (already checked by ``BackupOptions``)."""
    return [parse_recipient(value) for value in values]
