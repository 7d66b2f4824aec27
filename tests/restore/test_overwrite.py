"""Keys already at a storage target -> left, skipped or replaced as the overwrite policy says."""

from __future__ import annotations

from pathlib import Path

import pytest

import monetr_backup as mb
from monetr_backup.testing import TemporarySeaweedS3

from support.archives import flip_member_byte, member_names
from support.samples import Sample, copy_archive
from support.targets import (
    bucket_objects,
    modes,
    new_bucket,
    partial_files,
    put_objects,
    tree,
    write_files,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("kind", ["directory", "s3"])
@pytest.mark.parametrize("policy", list(mb.Overwrite))
async def test_overwrite_policy(
    policy: mb.Overwrite, kind: str, sample: Sample, s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """Keys already at the target: ``never`` lists them as conflicts and leaves them,
    ``skip`` lists them as skipped and leaves them, ``always`` replaces them. The other
    keys are restored either way."""
    keys = sorted(sample.files)
    existing = {key: b"already here: " + key.encode() for key in keys[::3]}
    fresh = sorted(set(keys) - set(existing))
    archive = mb.FileArchive(path=sample.archives[mb.DumpFormat.CUSTOM])
    storage: mb.DirectoryStorage | mb.S3Storage
    if kind == "directory":
        root = tmp_path / "target"
        write_files(root, existing, mode=0o644)
        storage = mb.DirectoryStorage(path=root)
    else:
        bucket = new_bucket(s3)
        put_objects(s3, bucket, existing)
        storage = s3.storage(bucket)

    result = await mb.restore(archive, storage=storage, options=mb.RestoreOptions(overwrite=policy))

    if policy is mb.Overwrite.ALWAYS:
        assert sorted(result.objects_restored) == keys
        assert result.conflicts == result.objects_skipped == []
        expected = sample.files
    else:
        assert sorted(result.objects_restored) == fresh
        listed = result.conflicts if policy is mb.Overwrite.NEVER else result.objects_skipped
        other = result.objects_skipped if policy is mb.Overwrite.NEVER else result.conflicts
        assert sorted(listed) == sorted(existing)
        assert other == []
        expected = {**sample.files, **existing}
    if isinstance(storage, mb.DirectoryStorage):
        assert tree(storage.path) == expected
        file_modes = {key: mode for key, mode in modes(storage.path).items() if key in sample.files}
        untouched = set(existing) if policy is not mb.Overwrite.ALWAYS else set()
        assert file_modes == {key: 0o644 if key in untouched else 0o600 for key in keys}
        folders = [p for p in storage.path.rglob("*") if p.is_dir()]
        assert folders
        assert {oct(p.stat().st_mode & 0o777) for p in folders} == {"0o700"}
        assert partial_files(storage.path) == []
    else:
        assert bucket_objects(s3, storage.bucket) == expected


@pytest.mark.parametrize("kind", ["directory", "s3"])
async def test_failed_restore_with_always_keeps_what_was_there(
    kind: str, sample: Sample, s3: TemporarySeaweedS3, tmp_path: Path
) -> None:
    """``always`` and a restore that then fails the manifest check: the objects that were
    at the target before are all still there with their old content, and nothing the
    restore wrote (new keys, staging copies) is left."""
    path = copy_archive(sample, mb.DumpFormat.CUSTOM, tmp_path)
    keys = sorted(sample.files)
    existing = {key: b"already here: " + key.encode() for key in keys[::2]}
    damaged_key = max(sample.files, key=lambda k: len(sample.files[k]))
    damaged = next(name for name in member_names(path) if name.endswith("/storage/" + damaged_key))
    flip_member_byte(path, damaged, index=3)
    storage: mb.DirectoryStorage | mb.S3Storage
    if kind == "directory":
        root = tmp_path / "target"
        write_files(root, existing, mode=0o644)
        storage = mb.DirectoryStorage(path=root)
    else:
        bucket = new_bucket(s3)
        put_objects(s3, bucket, existing)
        storage = s3.storage(bucket)

    with pytest.raises(mb.ChecksumError):
        await mb.restore(
            mb.FileArchive(path=path),
            storage=storage,
            options=mb.RestoreOptions(overwrite=mb.Overwrite.ALWAYS),
        )

    if isinstance(storage, mb.DirectoryStorage):
        assert tree(storage.path) == existing
        assert partial_files(storage.path) == []
    else:
        assert bucket_objects(s3, storage.bucket) == existing
