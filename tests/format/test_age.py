"""Compressed bytes -> age v1 and back: the stock CLI agrees, damage fails, threads end.

The stage under test is ``encrypt`` (an async generator) and ``open_decrypted`` (which
tells an age stream by its first line and passes anything else on unchanged).
"""

from __future__ import annotations

import gzip
import random
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import anyio.lowlevel
import pyrage
import pytest
from pydantic import SecretStr

import monetr_backup as mb
from monetr_backup import stages
from monetr_backup._format.decrypt import MAX_HEADER_SIZE, open_decrypted
from monetr_backup._format.encrypt import encrypt
from monetr_backup._keys import Identity, Recipient, parse_identity, parse_recipient

from support.age import age_decrypt, age_encrypt, age_keygen, age_threads, ssh_keygen
from support.chunks import each, pieces, sample_data
from support.secrets import assert_no_secret_in_error
from support.sizes import MIB

pytestmark = pytest.mark.anyio

CHUNK = 64 * 1024  # age's payload chunk
DATA = sample_data(3 * MIB + 12345)


def new_identity() -> tuple[pyrage.x25519.Identity, pyrage.x25519.Recipient]:
    identity = pyrage.x25519.Identity.generate()
    return identity, identity.to_public()


async def encrypted(data: bytes, recipients: list[Recipient], seed: int = 1) -> bytes:
    return b"".join([c async for c in encrypt(each(pieces(data, seed)), recipients)])


async def decrypted(data: bytes, identities: list[Identity], seed: int = 2) -> bytes:
    async with open_decrypted(each(pieces(data, seed)), identities) as plain:
        return b"".join([chunk async for chunk in plain])


@pytest.mark.parametrize(
    "size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, len(DATA)], ids=lambda s: f"{s}B"
)
async def test_round_trip_agrees_with_pyrage(size: int) -> None:
    """Whatever the size (age chunk boundaries included) and however the input is cut,
    the stream is one binary age v1 file: pyrage's one-shot decrypt reads it, and our
    decryption gives the bytes back."""
    identity, recipient = new_identity()
    data = DATA[:size]
    stream = await encrypted(data, [recipient], seed=size)
    assert stream.startswith(b"age-encryption.org/v1\n")
    assert pyrage.decrypt(stream, [identity]) == data
    assert await decrypted(stream, [identity], seed=size + 1) == data
    assert age_threads() == []


async def test_not_encrypted_passes_unchanged() -> None:
    """A plain or compressed archive is not touched, and needs no identity."""
    for data in (gzip.compress(DATA), DATA[:100], b"", b"age"):
        assert await decrypted(data, []) == data


async def test_the_stock_cli_reads_ours_and_we_read_its(tmp_path: Path) -> None:
    """``age -d`` decrypts what we encrypt, and we decrypt what ``age -r`` encrypts, with
    keys made by ``age-keygen``."""
    key = age_keygen(tmp_path / "key.txt")
    ours = tmp_path / "ours.age"
    ours.write_bytes(await encrypted(DATA, [parse_recipient(key.recipient)]))
    age_decrypt(ours, key.path, tmp_path / "ours.out")
    assert (tmp_path / "ours.out").read_bytes() == DATA

    (tmp_path / "plain").write_bytes(DATA)
    age_encrypt(tmp_path / "plain", [key.recipient], tmp_path / "theirs.age")
    theirs = (tmp_path / "theirs.age").read_bytes()
    assert await decrypted(theirs, parse_identity(key.secret)) == DATA


async def test_ssh_recipient_round_trip(tmp_path: Path) -> None:
    """An ed25519 SSH public key as recipient; its private key opens the stream, and so
    does ``age -d -i`` with that key."""
    key = ssh_keygen(tmp_path / "id_ed25519")
    stream = await encrypted(DATA, [parse_recipient(key.recipient)])
    assert await decrypted(stream, parse_identity(key.secret)) == DATA
    (tmp_path / "s.age").write_bytes(stream)
    age_decrypt(tmp_path / "s.age", key.path, tmp_path / "s.out")
    assert (tmp_path / "s.out").read_bytes() == DATA


async def test_the_public_stages_take_keys_as_text() -> None:
    """From ``monetr_backup.stages``, keys may be given as text: recipients as ``age1...``
    lines, identities as SecretStr (an identity file's text)."""
    identity, recipient = new_identity()
    stream = b"".join([c async for c in stages.encrypt(each([DATA]), [str(recipient)])])
    async with stages.open_decrypted(each([stream]), [SecretStr(str(identity))]) as plain:
        assert b"".join([chunk async for chunk in plain]) == DATA


async def test_two_recipients_either_identity_opens() -> None:
    first, first_public = new_identity()
    second, second_public = new_identity()
    stream = await encrypted(DATA, [first_public, second_public])
    assert await decrypted(stream, [first]) == DATA
    assert await decrypted(stream, [second]) == DATA
    other, _ = new_identity()
    assert await decrypted(stream, [other, second]) == DATA


@pytest.mark.reliability(
    "hostile input",
    "an age stream opened with no identity, or with identities of other recipients",
    "DecryptionError on opening, before any byte is handed on; no key in its text",
)
async def test_missing_or_wrong_identity_fails_on_opening() -> None:
    _, recipient = new_identity()
    stream = await encrypted(DATA, [recipient])
    wrong = [new_identity()[0], new_identity()[0]]
    for identities in ([], wrong):
        pulled = 0

        async def source() -> AsyncIterator[bytes]:
            nonlocal pulled
            for chunk in pieces(stream, 3):
                pulled += len(chunk)
                yield chunk

        with pytest.raises(mb.DecryptionError) as caught:
            async with open_decrypted(source(), identities):
                pytest.fail("opened")
        # Only the header (and the batch it came in) was read.
        assert pulled < MIB
        secrets = [str(identity) for identity in wrong]
        assert_no_secret_in_error(caught.value, secrets)
    assert age_threads() == []


def _damaged(stream: bytes, how: str, rng: random.Random, size: int) -> bytes:
    header_end = stream.index(b"\n--- ") + 1
    if how == "flip in header":
        index = rng.randrange(len(b"age-encryption.org/v1\n"), header_end)
        return stream[:index] + bytes([stream[index] ^ 0x01]) + stream[index + 1 :]
    if how == "flip in payload":
        index = rng.randrange(header_end + 70, len(stream))
        flipped = stream[index] ^ (1 << rng.randrange(8))
        return stream[:index] + bytes([flipped]) + stream[index + 1 :]
    if how == "last byte flipped":
        return stream[:-1] + bytes([stream[-1] ^ 0x80])
    if how == "cut":
        return stream[: rng.randrange(header_end + 1, len(stream))]
    if how == "cut at a chunk boundary":
        body = stream.index(b"\n", header_end) + 1 + 16  # the MAC line, the nonce
        return stream[: body + (CHUNK + 16) * rng.randrange(1, size // CHUNK)]
    if how == "data appended":
        return stream + rng.randbytes(rng.randrange(1, 5000))
    raise AssertionError(how)


DAMAGE = [
    "flip in header",
    "flip in payload",
    "last byte flipped",
    "cut",
    "cut at a chunk boundary",
    "data appended",
]


@pytest.mark.reliability(
    "hostile input",
    "an encrypted stream with a byte flipped (header, payload, last byte), cut anywhere "
    "or at a chunk boundary, or with bytes appended",
    "CorruptArchiveError (or DecryptionError for a header no longer ours); the complete "
    "plaintext is never handed on",
)
@pytest.mark.parametrize("how", DAMAGE)
@pytest.mark.parametrize(
    ("size", "cut"),
    [(len(DATA), True), (40 * CHUNK, True), (4 * CHUNK, False)],
    ids=["uneven", "whole-chunks", "whole-chunks-in-one-piece"],
)
async def test_damage_fails_and_the_end_is_never_handed_on(how: str, size: int, cut: bool) -> None:
    """Whatever the damage, the stream raises, and what it handed on before is a proper
    prefix of the plaintext. With a plaintext of whole chunks, age has nothing left to
    withhold when it finds bytes appended: the stage's own holding back is what keeps
    the end from a reader that would take it for a complete archive."""
    identity, recipient = new_identity()
    data = DATA[:size]
    stream = await encrypted(data, [recipient])
    for seed in range(4):
        bad = _damaged(stream, how, random.Random(seed), size)
        got = bytearray()
        chunks = pieces(bad, seed) if cut else [bad]

        async def read(chunks: list[bytes] = chunks, got: bytearray = got) -> None:
            async with open_decrypted(each(chunks), [identity]) as plain:
                async for chunk in plain:
                    got += chunk

        with pytest.raises((mb.CorruptArchiveError, mb.DecryptionError)):
            await read()
        # What was handed on is an authenticated prefix, never the whole.
        assert len(got) < len(data)
        assert data.startswith(bytes(got))
    assert age_threads() == []


@pytest.mark.reliability(
    "hostile input",
    "an age header that never ends (stanza lines past 1 MiB), and an armored age file",
    "CorruptArchiveError after reading at most the bound, in bounded time",
)
async def test_endless_header_and_armor_are_refused() -> None:
    identity, _ = new_identity()
    endless = b"age-encryption.org/v1\n" + b"-> X25519 AAAA\nAAAA\n" * (MAX_HEADER_SIZE // 10)
    pulled = 0

    async def source() -> AsyncIterator[bytes]:
        nonlocal pulled
        for chunk in pieces(endless, 5):
            pulled += len(chunk)
            yield chunk

    with pytest.raises(mb.CorruptArchiveError, match="does not end within"):
        async with open_decrypted(source(), [identity]):
            pytest.fail("opened")
    assert pulled <= MAX_HEADER_SIZE + 300_000
    armored = pyrage.encrypt(DATA[:1000], [identity.to_public()], armored=True)
    with pytest.raises(mb.CorruptArchiveError, match="ASCII-armored"):
        async with open_decrypted(each([armored]), [identity]):
            pytest.fail("opened")


async def test_back_pressure_holds_one_batch() -> None:
    """Encrypting, the source is read only as far as the consumer takes output: a batch
    (1 MiB) ahead at most, not the whole stream; decrypting likewise."""
    identity, recipient = new_identity()
    big = random.Random(7).randbytes(16 * MIB)
    pulled = 0

    async def source(data: bytes) -> AsyncIterator[bytes]:
        nonlocal pulled
        for start in range(0, len(data), 256 * 1024):
            pulled += 256 * 1024
            yield data[start : start + 256 * 1024]

    stream = encrypt(source(big), [recipient])
    first = await anext(stream)
    assert len(first) > 0
    await anyio.sleep(0.05)
    assert pulled <= 2 * MIB
    await stream.aclose()
    assert age_threads() == []

    ciphertext = await encrypted(big, [recipient])
    pulled = 0
    async with open_decrypted(source(ciphertext), [identity]) as plain:
        await anext(plain)
        await anyio.sleep(0.05)
        assert pulled <= 4 * MIB
    assert age_threads() == []


@pytest.mark.reliability(
    "cancellation",
    "encryption and decryption cancelled mid-stream (consumer waiting, or a step running)",
    "cancelled; the age thread has ended when the cancellation returns",
)
@pytest.mark.parametrize("direction", ["encrypt", "decrypt"])
@pytest.mark.parametrize("after", [0.0, 0.003, 0.02])
async def test_cancellation_mid_stream_ends_the_thread(direction: str, after: float) -> None:
    identity, recipient = new_identity()
    big = random.Random(8).randbytes(24 * MIB)
    ciphertext = await encrypted(big, [recipient]) if direction == "decrypt" else b""

    async def slow(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 512 * 1024):
            await anyio.lowlevel.checkpoint()
            yield data[start : start + 512 * 1024]

    got = 0
    with anyio.move_on_after(after) as scope:
        if direction == "encrypt":
            stream = encrypt(slow(big), [recipient])
            try:
                async for chunk in stream:
                    got += len(chunk)
            finally:
                with anyio.CancelScope(shield=True):
                    await stream.aclose()
        else:
            async with open_decrypted(slow(ciphertext), [identity]) as plain:
                async for chunk in plain:
                    got += len(chunk)
    assert scope.cancelled_caught
    assert got < len(big)
    assert age_threads() == []


def test_keys_are_parsed_and_refused_without_quoting(tmp_path: Path) -> None:
    """Identity files with comments and several keys parse; a bad identity or recipient
    is a ValueError that quotes neither the text nor pyrage's reason."""
    first, second = pyrage.x25519.Identity.generate(), pyrage.x25519.Identity.generate()
    text = f"# created: now\n# public key: {first.to_public()}\n{first}\n\n{second}\n"
    assert len(parse_identity(text)) == 2
    secret = str(first)
    for bad in (secret[:-3] + "qqq", "AGE-SECRET-KEY-", f"nonsense {secret}", "# only\n"):
        with pytest.raises(ValueError, match="identity") as caught:
            parse_identity(bad)
        assert_no_secret_in_error(caught.value, [secret[16:40]])
    for recipient in ("age1qqqq", "ssh-ed25519 AAAAC3Nz", "pgp:1234", ""):
        with pytest.raises(ValueError, match="recipient"):
            parse_recipient(recipient)
