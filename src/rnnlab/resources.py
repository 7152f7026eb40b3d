"""What the machine can hold: sizes are checked against memory before anything is allocated.

A model, a batch or a file that would need more memory than the machine has is
refused with one line naming what asked for it, instead of failing (or swapping)
halfway through an allocation.
"""

from __future__ import annotations

import os

#: the share of the machine's memory one request may take
SHARE = 0.8


def total_memory() -> int:
    """The machine's physical memory in bytes (a large number where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 50


def check_fits(nbytes: int | float, what: str) -> None:
    """Raise ``ValueError`` when ``nbytes`` is more than :data:`SHARE` of the memory.

    ``what`` names the request for the message, e.g. ``"a model with hidden_size=100000"``.
    """
    limit = SHARE * total_memory()
    if nbytes > limit:
        raise ValueError(f"{what} needs {_size(nbytes)} of memory; this machine has "
                         f"{_size(total_memory())}")  # fmt: skip


def _size(nbytes: int | float) -> str:
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{int(nbytes)} bytes"
