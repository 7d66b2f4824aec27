"""Sizes and limits that the settings and the stages share."""

MIB = 1024 * 1024
#: S3 refuses non-final multipart parts smaller than this.
S3_MIN_PART_SIZE = 5 * MIB
#: ... and any part larger than this.
S3_MAX_PART_SIZE = 5 * 1024 * MIB
