"""`ncsn-fast generate`'s engine: the sharded, resumable, multi-process loop (loop.py), the run's folder and what
resume and overwrite may do with it (folder.py), and its verified records (shards.py)."""

from .folder import (
    Settings,
    bytes_needed,
    check_space,
    discard_run,
    prepare_output,
    read_manifest,
    write_manifest,
)
from .loop import (
    Timing,
    Writer,
    auto_batch_size,
    environment,
    file_sha256,
    finish,
    generate,
    png_path,
    remove_stale_temps,
    rss_mb,
    versions,
)
from .shards import recorded_shards, verify_shards

__all__ = ["Settings", "Timing", "Writer", "auto_batch_size", "bytes_needed", "check_space", "discard_run",
           "environment", "file_sha256", "finish", "generate", "png_path", "prepare_output", "read_manifest",
           "recorded_shards", "remove_stale_temps", "rss_mb", "verify_shards", "versions", "write_manifest"]
