"""Unzipping .gz source files in place (the upstream unzip step; prepare reads .gz directly)."""

from __future__ import annotations

import gzip
import shutil
import zlib
from pathlib import Path
from typing import Union

from lit_gpt.errors import UserError
from lit_gpt.io.atomic import staged


def gunzip_files(source_dir: Union[str, Path], destination_dir: Union[str, Path, None] = None,
                 remove_source: bool = False) -> list[Path]:
    """Decompresses every *.gz under `source_dir` (into `destination_dir`); existing outputs are left alone."""
    source_dir = Path(source_dir).expanduser()
    if not source_dir.is_dir():
        raise UserError(f"source directory not found: {source_dir}")
    archives = sorted(p for p in source_dir.rglob("*.gz") if p.is_file())
    if not archives:
        raise UserError(f"no .gz files in {source_dir}")
    written = []
    out_dir = source_dir if destination_dir is None else Path(destination_dir).expanduser()
    for archive in archives:
        target = (out_dir / archive.relative_to(source_dir)).with_suffix("")
        if target.exists():
            continue
        with staged(target, "unzipped file") as tmp:  # a hidden name beside the target until complete
            try:
                with gzip.open(archive, "rb") as src, open(tmp, "wb") as dst:
                    shutil.copyfileobj(src, dst, length=1 << 20)
            except (gzip.BadGzipFile, EOFError, zlib.error) as err:
                raise UserError(f"{archive}: corrupt gzip ({err or type(err).__name__})") from None
        if remove_source:
            archive.unlink()
        written.append(target)
    return written
