"""Where numba caches the compiled kernels, when its own choices cannot be written.

numba writes its cache beside the source (``__pycache__``) or, when that is read-only
(an installed package), in the user's cache directory. When neither can be written
(a read-only install with an unwritable home), every compiled function fails at import
with "cannot cache function". :func:`choose` then names a private directory under the
system's temporary directory; nothing changes where numba's own choice works or where
``NUMBA_CACHE_DIR`` is set. Importing this module does it (the package imports it
before any kernel).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path


def user_cache_dir(env: Mapping[str, str] = os.environ) -> Path:
    """The user cache directory numba uses (``$XDG_CACHE_HOME`` or ``~/.cache``)."""
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "numba"


def _creatable(path: Path, writable: Callable[[Path], bool]) -> bool:
    while not path.exists():
        if path.parent == path:
            return False
        path = path.parent
    return path.is_dir() and writable(path)


def choose(package_dir: Path, env: Mapping[str, str] = os.environ,
           writable: Callable[[Path], bool] = lambda p: os.access(p, os.W_OK | os.X_OK)
           ) -> Path | None:  # fmt: skip
    """A cache directory to give numba, or None where its own choice works."""
    if env.get("NUMBA_CACHE_DIR"):
        return None
    if writable(package_dir) or _creatable(user_cache_dir(env), writable):
        return None
    return Path(tempfile.gettempdir()) / f"rnnlab-numba-cache-{os.getuid()}"


def configure() -> Path | None:
    """Point numba at :func:`choose`'s directory when needed (before any kernel is
    decorated); returns it."""
    directory = choose(Path(__file__).resolve().parent)
    if directory is not None:
        from numba.core import config

        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        config.CACHE_DIR = str(directory)
    return directory


configure()
