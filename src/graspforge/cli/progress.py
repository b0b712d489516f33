"""Progress reports: a tqdm bar on a terminal; in a log file (stderr not a terminal) a plain line
every ``step`` of the way, not thousands of carriage-return updates."""

from __future__ import annotations

import sys
from typing import Any

from tqdm import tqdm


class PlainProgress:
    """tqdm's ``update`` / ``set_postfix`` / ``close`` / ``n``, printing ``desc: 30% (144/480 it) ...``
    lines at every ``step`` fraction crossed and at the end."""

    def __init__(self, total: int, desc: str, unit: str, step: float = 0.1, file=None):
        self.total, self.desc, self.unit, self.step = max(1, int(total)), desc, unit, step
        self.file = file or sys.stderr
        self.n = 0
        self._next = step
        self._postfix = ""
        self._closed = False

    def update(self, k: int = 1) -> None:
        self.n += int(k)
        frac = self.n / self.total
        if frac >= self._next - 1e-12 and self.n < self.total:
            self._print()
            while self._next <= frac + 1e-12:
                self._next += self.step

    def reset(self, total: int | None = None) -> None:
        """Start over from 0 (tqdm's ``reset``), e.g. for another synthesis round."""
        if total is not None:
            self.total = max(1, int(total))
        self.n, self._next, self._closed = 0, self.step, False

    def set_postfix(self, **kw: Any) -> None:
        self._postfix = " ".join(f"{k}={v}" for k, v in kw.items())

    def _print(self) -> None:
        print(f"{self.desc}: {self.n / self.total:.0%} ({self.n}/{self.total} {self.unit}) {self._postfix}".rstrip(),
              file=self.file, flush=True)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._print()


def progress_bar(total: int, desc: str, unit: str, file=None):
    """A tqdm bar when ``file`` (stderr) is a terminal, else :class:`PlainProgress`."""
    file = file or sys.stderr
    if hasattr(file, "isatty") and file.isatty():
        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, file=file)
    return PlainProgress(total, desc, unit, file=file)
