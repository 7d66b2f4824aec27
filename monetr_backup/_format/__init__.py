"""The archive itself: member layout and documents, tar writing and reading, codecs.

Backup direction: ``members`` (sources -> ordered members) -> ``tar_write`` -> ``compress``.
Restore direction: ``decompress`` -> ``tar_read`` -> ``archive_reader`` (checked contents).
Nothing here does I/O of its own: bytes come from and go to the backends.
"""
