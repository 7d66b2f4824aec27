"""The catalog: an entry next to each archive -> listing and pruning without reading archives.

entry.py     the entry's model, built from a committed archive's header and manifest
digest.py    a sink wrapper hashing the archive's bytes as they are written
record.py    the entry written after the commit (and what happens if that fails)
location.py  a directory or bucket prefix of archives: listing, entries, deletes
listing.py   list_backups     policy.py  restic's keep rules     prune.py  prune
lookup.py    one archive's entry, for inspect()
"""

from .digest import HashingSink
from .entry import CatalogEntry, EntrySummary, EntryTotals, FileSetCounts, recipient_fingerprint
from .listing import BackupListing, ListedBackup, UnreadableEntry, list_backups
from .location import FileArchives, S3Archives
from .lookup import entry_for
from .policy import RetentionPolicy
from .prune import KeptBackup, PruneResult, StaleUpload, prune
from .record import EntryWrite, record_backup

__all__ = [
    "BackupListing",
    "CatalogEntry",
    "EntrySummary",
    "EntryTotals",
    "EntryWrite",
    "FileArchives",
    "FileSetCounts",
    "HashingSink",
    "KeptBackup",
    "ListedBackup",
    "PruneResult",
    "RetentionPolicy",
    "S3Archives",
    "StaleUpload",
    "UnreadableEntry",
    "entry_for",
    "list_backups",
    "prune",
    "recipient_fingerprint",
    "record_backup",
]
