"""flowscope: a real-time network traffic classifier.

Packets are read in bulk, decoded and metered into bidirectional flows by compiled
kernels; each finished flow becomes one row of CICFlowMeter-compatible features.
"""

import os as _os
import tempfile as _tempfile

__version__ = "0.1.0"


def _numba_cache_dir() -> None:
    """Give numba a writable kernel cache before anything imports it.

    numba caches compiled kernels beside the sources; in a system-wide or read-only
    install that fails, and its own fallback (the home directory) does not exist for
    service accounts, so a non-root `flowscope` could not even import. Use the user's
    cache directory, or a per-user temporary one, unless NUMBA_CACHE_DIR is set.
    """
    if "NUMBA_CACHE_DIR" in _os.environ:
        return
    here = _os.path.dirname(_os.path.abspath(__file__))
    if _os.access(here, _os.W_OK):
        return
    base = _os.environ.get("XDG_CACHE_HOME") or _os.path.join(_os.path.expanduser("~"), ".cache")
    for root in (base, _tempfile.gettempdir()):
        path = _os.path.join(root, f"flowscope-numba-{_os.getuid()}")
        try:
            _os.makedirs(path, mode=0o700, exist_ok=True)
        except OSError:
            continue
        if _os.access(path, _os.W_OK):
            _os.environ["NUMBA_CACHE_DIR"] = path
            return


_numba_cache_dir()
