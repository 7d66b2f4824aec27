"""S3: the client and its errors, the multipart upload and resumable download of an archive,
a bucket as a storage source and as a restore target."""
