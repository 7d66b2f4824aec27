"""Local disk: an archive file written and read, a storage directory walked and restored."""
