"""A generation run's records: `shards/shard_<k>.npz`, one per shard of indices, each holding its uint8 images, their
indices, the run's settings digest and the SHA-256 of the images. A shard counts as done only once its PNGs and
then its record are durable (the file system synced, the record fsynced with its folder), and a record counts only
once verified: readable, of this run, of the right indices and shape, its checksum right. A bad or foreign one is
named and made again, never trusted. At the end the records are streamed into samples.npz and their checksums go
into the manifest.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from ..errors import NcsnError
from ..fileio import atomic_write, sync_filesystem


def shard_path(out: Path, k: int) -> Path:
    return out / "shards" / f"shard_{k:06d}.npz"


def shard_range(k: int, n: int, shard_size: int) -> range:
    return range(k * shard_size, min((k + 1) * shard_size, n))


def recorded_shards(out: Path) -> set[int]:
    """The shards with a record on disk (verified ones: `verify_shards`)."""
    folder = out / "shards"
    if not folder.is_dir():
        return set()
    ks = set()
    for p in folder.glob("shard_*.npz"):
        try:
            ks.add(int(p.stem.split("_")[1]))
        except ValueError:
            continue
    return ks


def checksum(images: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()


def write_shard(out: Path, k: int, ids: range, images: np.ndarray, digest: str, png_futures) -> None:
    """The record of shard k, after its PNGs are on disk and durable."""
    for f in png_futures:
        f.result()
    if png_futures:
        sync_filesystem(out)
    atomic_write(shard_path(out, k), lambda f: np.savez(
        f, images=images, first=np.int64(ids.start), count=np.int64(len(ids)), run=np.array(digest),
        sha256=np.array(checksum(images))), durable=True)


def read_shard(out: Path, k: int, n: int, shard_size: int, digest: str, hwc: tuple[int, int, int]) -> np.ndarray:
    """The images of a verified record; ValueError saying what is wrong with it otherwise."""
    ids = shard_range(k, n, shard_size)
    try:
        with np.load(shard_path(out, k), allow_pickle=False) as z:
            fields = {key: z[key] for key in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"unreadable ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    missing = {"images", "first", "count", "run", "sha256"} - set(fields)
    if missing:
        raise ValueError(f"not a record of this program (no {', '.join(sorted(missing))})")
    if str(fields["run"]) != digest:
        raise ValueError("a record of another run (other settings)")
    images = fields["images"]
    if (int(fields["first"]), int(fields["count"])) != (ids.start, len(ids)):
        raise ValueError(f"indices {int(fields['first'])}.. ({int(fields['count'])}) instead of {ids.start}.. "
                         f"({len(ids)})")
    if images.dtype != np.uint8 or images.shape != (len(ids), *hwc):
        raise ValueError(f"images {images.dtype} {images.shape} instead of uint8 {(len(ids), *hwc)}")
    if checksum(images) != str(fields["sha256"]):
        raise ValueError("checksum mismatch (a damaged file)")
    return images


def verify_shards(out: Path, n: int, shard_size: int, digest: str, hwc: tuple[int, int, int],
                  png_path=None) -> list[str]:
    """Verify every record (and, given png_path(i), that its PNGs are there); remove the bad ones (they will be
    made again) and return a line naming each."""
    notes = []
    for k in sorted(recorded_shards(out)):
        try:
            read_shard(out, k, n, shard_size, digest, hwc)
            if png_path is not None:
                gone = [i for i in shard_range(k, n, shard_size) if not png_path(i).is_file()]
                if gone:
                    raise ValueError(f"{len(gone)} of its PNGs are missing (first: {png_path(gone[0]).name})")
        except ValueError as e:
            shard_path(out, k).unlink(missing_ok=True)
            notes.append(f"{shard_path(out, k).relative_to(out)}: {e}; it will be made again")
    return notes


def collect(out: Path, n: int, shard_size: int, digest: str, hwc: tuple[int, int, int]):
    """(k, images) of every shard in order, each verified as it is read; NcsnError naming a bad one."""
    for k in range((n + shard_size - 1) // shard_size):
        try:
            yield k, read_shard(out, k, n, shard_size, digest, hwc)
        except (ValueError, FileNotFoundError) as e:
            raise NcsnError(f"{shard_path(out, k).relative_to(out)} of {out} is not a good record ({e}): run "
                            f"again with --resume to make it again") from None


def write_npz_streaming(path: Path, out: Path, n: int, shard_size: int, digest: str,
                        hwc: tuple[int, int, int]) -> list[dict]:
    """samples.npz with arr_0 = uint8 (n, H, W, C), written shard by shard (never all in memory), each shard
    verified as it is read; returns the shards' records {k, first, count, sha256} for the manifest."""
    header = {"descr": "|u1", "fortran_order": False, "shape": (n, *hwc)}
    records = []

    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            with zf.open("arr_0.npy", "w", force_zip64=True) as entry:
                np.lib.format.write_array_header_1_0(entry, header)
                for k, images in collect(out, n, shard_size, digest, hwc):
                    entry.write(np.ascontiguousarray(images).tobytes())
                    records.append({"k": k, "first": k * shard_size, "count": len(images),
                                    "sha256": checksum(images)})
    atomic_write(path, write, durable=True)
    return records


def shard_records(out: Path, n: int, shard_size: int, digest: str, hwc: tuple[int, int, int]) -> list[dict]:
    """The shards' records for the manifest, each verified (when no samples.npz is written)."""
    return [{"k": k, "first": k * shard_size, "count": len(images), "sha256": checksum(images)}
            for k, images in collect(out, n, shard_size, digest, hwc)]
