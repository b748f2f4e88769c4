"""Fetch and unpack the STOP release when the data folder lacks it.

``ensure_release(data_folder, url)`` leaves the extracted release in
``data_folder/stop`` (the folder holding ``manifests/``):

1. a release already there is used as it is, unless ``stop.tar.gz`` sits
   beside it without the marker of a complete extraction (then the extraction
   was interrupted: it is finished, see 3);
2. otherwise ``data_folder/stop.tar.gz`` is used, or downloaded from ``url``
   (Meta's official address by default; a mirror or an S3 copy served over
   HTTP(S) works the same) into ``stop.tar.gz.part``, resumed with an HTTP
   Range request after an interruption, with a progress bar, and renamed to
   ``stop.tar.gz`` only once its size equals the size the server announced;
3. the archive is extracted member by member; a file already on disk with the
   member's size and modification time is kept, anything else is (re)written,
   so an interrupted extraction is finished rather than trusted. The marker
   ``data_folder/.stop_extracted`` is written last.

SpeechBrain's ``download_file`` is not used: it neither resumes nor checks the
size, and it writes the final file name while downloading, so an interrupted
download would later be taken for the archive.
"""

from __future__ import annotations

import http.client
import logging
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from stop_slu.data_prep.release import find_release_root
from stop_slu.data_prep.rows import PrepareError

logger = logging.getLogger(__name__)

STOP_URL = "https://dl.fbaipublicfiles.com/stop/stop.tar.gz"  # the address Meta's STOP page gives
ARCHIVE_NAME = "stop.tar.gz"
MARKER_NAME = ".stop_extracted"
_CHUNK = 1 << 20


class DownloadError(PrepareError):
    """The release could not be fetched or unpacked; the message says what to do."""


def _total_size(response, offset: int) -> int | None:
    """The full size of the file from a 200 or 206 response, None if not given."""
    content_range = response.headers.get("Content-Range")
    if response.status == 206 and content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    length = response.headers.get("Content-Length")
    if length is None or not length.isdigit():
        return None
    return int(length) + (offset if response.status == 206 else 0)


def download(url: str, dest, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` (a file path), resuming ``dest.part``.

    The bytes go to ``<dest>.part``; a later call sends ``Range: bytes=N-`` for
    the N bytes already there (a server that ignores it sends the whole file
    again, which is then started over). ``dest`` appears only when the received
    size equals the announced one. Raises DownloadError (one line, with the
    fix) for a network failure, an HTTP error or a size mismatch; the partial
    file is kept for the next try.
    """
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the part file is already whole (or longer than the file)
            part.unlink()
            return download(url, dest, progress, timeout)
        raise DownloadError(
            f"{url}: HTTP {e.code} {e.reason}; check data_url or download {ARCHIVE_NAME} yourself"
        ) from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadError(
            f"{url}: cannot download ({reason}); check the network and data_url, or put {ARCHIVE_NAME} in {dest.parent}"
        ) from None
    with response:
        if response.status != 206:
            offset = 0  # the server sent the whole file
        total = _total_size(response, offset)
        if offset:
            logger.info("Resuming the download of %s at %d bytes", url, offset)
        received = offset
        try:
            with (
                open(part, "ab" if offset else "wb", buffering=0) as f,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=f"download {dest.name}",
                    disable=not progress,
                ) as bar,
            ):
                while chunk := response.read1(_CHUNK):
                    f.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
        except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
            raise DownloadError(
                f"{url}: download interrupted at {received} bytes ({e}); run again to resume from {part}"
            ) from None
    if total is None:
        raise DownloadError(
            f"{url}: the server did not announce the file size, so {part} cannot be checked; "
            f"download {ARCHIVE_NAME} yourself into {dest.parent}"
        )
    if received != total:
        raise DownloadError(
            f"{url}: received {received} of {total} bytes; run again to resume from {part}"
            + (" (or delete it: it is longer than the file)" if received > total else "")
        )
    part.replace(dest)
    return dest


def extract(archive, folder, progress: bool = True) -> None:
    """Extract ``archive`` (a tar.gz) into ``folder``, finishing an earlier,
    interrupted extraction: members already on disk with their size and
    modification time are kept, the rest written. Writes ``folder/.stop_extracted``
    when complete. Members with absolute or ``..`` paths, links out of the
    folder or device files are refused (tarfile's ``data`` filter). Raises
    DownloadError for an unreadable archive."""
    archive, folder = Path(archive), Path(folder)
    marker = folder / MARKER_NAME
    marker.unlink(missing_ok=True)
    try:
        with (
            tarfile.open(archive, "r:*") as tar,
            tqdm(unit="B", unit_scale=True, desc=f"extract {archive.name}", disable=not progress) as bar,
        ):
            kept = 0
            for member in tar:
                target = folder / member.name
                if member.isfile():
                    try:
                        stat = target.stat()
                        if stat.st_size == member.size and int(stat.st_mtime) == int(member.mtime):
                            kept += 1
                            bar.update(member.size)
                            continue
                    except OSError:
                        pass
                tar.extract(member, folder, filter="data")
                bar.update(member.size)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise DownloadError(f"{archive}: cannot extract ({e}); delete it and run again to download it afresh") from None
    if kept:
        logger.info("Extraction finished: %d file(s) already extracted were kept", kept)
    marker.write_text(f"{archive.name} {archive.stat().st_size}\n")


def ensure_release(data_folder, url: str = STOP_URL, progress: bool = True) -> Path:
    """The release root under ``data_folder`` (see the module docstring),
    downloaded from ``url`` and extracted when needed. Call it on the main
    process only (``speechbrain.utils.distributed.run_on_main``). Raises
    DownloadError."""
    data_folder = Path(data_folder)
    archive = data_folder / ARCHIVE_NAME
    try:
        root = find_release_root(data_folder)
    except FileNotFoundError:
        root = None
    if (data_folder / MARKER_NAME).is_file() and root is not None:
        return root
    if root is not None and not archive.is_file() and not archive.with_name(ARCHIVE_NAME + ".part").is_file():
        return root  # a release extracted by the user
    if not archive.is_file():
        logger.info("No STOP release in %s: downloading %s (about 50 GB for the full release)", data_folder, url)
        download(url, archive, progress=progress)
    logger.info("Extracting %s into %s", archive, data_folder)
    extract(archive, data_folder, progress=progress)
    try:
        return find_release_root(data_folder)
    except FileNotFoundError:
        raise DownloadError(
            f"{archive}: the archive holds no manifests/ folder; check that data_url names STOP's stop.tar.gz"
        ) from None
