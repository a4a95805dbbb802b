"""Writing a token stream as chunk files of a fixed size."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lit_gpt.data.format import PathLike, dtype_code, write_chunk


class ChunkWriter:
    """Fills chunks of `chunk_size` tokens and writes each as `{prefix}_{index:010d}.bin`.

    A full chunk is written only once a further token needs room (TinyLlama's rule, which its
    `write_reminder` relies on); `finish()` pads the last chunk with `sep_token` (the EOS that
    separates documents) and writes it.
    """

    def __init__(self, out_dir: PathLike, prefix: str, chunk_size: int, sep_token: int, dtype=np.uint16):
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self.out_dir = Path(out_dir)
        self.prefix = prefix
        self.chunk_size = int(chunk_size)
        self.sep_token = sep_token
        self.dtype = np.dtype(dtype)
        dtype_code(self.dtype)  # fail early on a dtype the format cannot name
        self._buffer = np.full(chunk_size, sep_token, dtype=self.dtype)
        self._filled = 0
        self._paths: list[Path] = []

    @property
    def filenames(self) -> list[Path]:
        return list(self._paths)

    def add_array(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens)
        while tokens.size:
            if self._filled == self.chunk_size:
                self._write()
            take = min(self.chunk_size - self._filled, tokens.size)
            self._buffer[self._filled : self._filled + take] = tokens[:take]
            self._filled += take
            tokens = tokens[take:]

    def _write(self) -> None:
        path = self.out_dir / f"{self.prefix}_{len(self._paths):010d}.bin"
        self._paths.append(write_chunk(path, self._buffer))
        self._buffer.fill(self.sep_token)
        self._filled = 0

    @property
    def padding(self) -> int:
        """Separator tokens that `finish()` adds to fill the last chunk."""
        return self.chunk_size - self._filled if self._filled else 0

    def finish(self) -> list[Path]:
        if self._filled:
            self._write()
        return self.filenames
