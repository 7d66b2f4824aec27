"""Sizes the tests share: MiB, S3's smallest part, the dump part size of the backup tests."""

MIB = 1024 * 1024
GIB = 1024 * MIB
#: S3's smallest allowed non-final multipart part.
MIN_PART = 5 * MIB
#: Dump part size for the tests: small, so a modest database spans many parts.
DUMP_PART_SIZE = 256 * 1024
