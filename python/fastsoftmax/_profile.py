"""Machine profiles: this machine's own crossover for ``algorithm="auto"``.

``auto`` runs three-pass reload on rows of at most a limit of input bytes and two-pass on
longer ones. The built-in limit comes from the L2 size; ``fastsoftmax-bench --tune``
measures both kernels on this machine and stores the limit that picks the faster one per
dtype in a profile file. At import the profile's entry for this machine (its CPU, active
tier and cache sizes) replaces the built-in limit, so a given machine and configuration
always picks the same kernel. The entry may also hold ``prefetch_min_elements``: the row
length (elements) from which the kernels use software prefetch, where ``--tune`` found that
turning it off is faster on this machine.

The file: ``FASTSOFTMAX_PROFILE`` when set (``off`` disables profiles), else
``$XDG_CONFIG_HOME/fastsoftmax/profile.json`` (``~/.config/fastsoftmax/profile.json``). One
file holds entries for several machines (a home directory shared by a cluster).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any, Dict, Optional

from . import _core

__all__ = ["profile_path", "machine_key", "load", "save_entry", "status", "DTYPES"]

DTYPES = tuple(_core.dtype_names())  # the dtypes auto has a reload limit for: every kernel dtype
FORMAT = 1
_ENV = "FASTSOFTMAX_PROFILE"

# What import found, for runtime_info(): path, whether this machine's entry was applied, why not.
_status: Dict[str, Any] = {"path": None, "applied": False, "reason": "not loaded"}


def profile_path() -> Optional[str]:
    """The profile file this process reads and ``--tune`` writes (None: profiles are off)."""
    env = os.environ.get(_ENV)
    if env is not None:
        if env.strip().lower() == "off":
            return None
        if not env.strip():
            raise ValueError(f"{_ENV} is empty: set it to a file path or to 'off'")
        return os.path.abspath(os.path.expanduser(env))
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "fastsoftmax", "profile.json")


def machine_key() -> str:
    """What a profile entry is valid for: the CPU, the active tier and the cache sizes."""
    c = _core.cache_sizes()
    brand = _core.cpu_brand() or "unknown CPU"
    return f"{brand} | {_core.active_isa()} | L2 {c['l2']} | L3 {c['l3']}"


def _read(path: str) -> Dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("machines"), dict):
        raise ValueError(f"not a fastsoftmax profile (format {FORMAT}): {path}")
    for key, entry in data["machines"].items():
        limits = entry.get("reload_limit_bytes") if isinstance(entry, dict) else None
        if not isinstance(limits, dict) or not limits:
            raise ValueError(f"{path}: the entry for {key!r} has no reload_limit_bytes")
        for dtype, b in limits.items():
            if dtype not in DTYPES or not isinstance(b, int) or isinstance(b, bool) or b < 0:
                raise ValueError(f"{path}: the entry for {key!r} has a bad limit {dtype!r}: {b!r}")
        pf = entry.get("prefetch_min_elements")
        if pf is not None and (not isinstance(pf, int) or isinstance(pf, bool) or pf < 0):
            raise ValueError(f"{path}: the entry for {key!r} has a bad prefetch_min_elements: {pf!r}")
    return data


def _apply(entry: Dict[str, Any]) -> None:
    limits = entry.get("reload_limit_bytes", {})
    for dtype in DTYPES:
        _core.set_auto_reload_limit(dtype, limits.get(dtype))
    # Software prefetch: rows (and chunks of long rows) of at least this many elements use it.
    _core.set_prefetch_min_elements(entry.get("prefetch_min_elements"))


def load() -> None:
    """At import: apply this machine's profile entry, if there is one.

    A profile named by ``FASTSOFTMAX_PROFILE`` that cannot be read is an error; the default
    file, a warning (and the built-in rule).
    """
    _apply({})
    explicit = os.environ.get(_ENV) is not None
    path = profile_path()
    _status.update(path=path, applied=False, reason=None)
    if path is None:
        _status["reason"] = f"{_ENV}=off"
        return
    if not os.path.exists(path):
        _status["reason"] = "no profile file (fastsoftmax-bench --tune writes one)"
        return
    try:
        data = _read(path)
    except (OSError, ValueError) as e:  # json.JSONDecodeError is a ValueError
        if explicit:
            raise ValueError(f"{_ENV}={os.environ[_ENV]!r}: {e}") from None
        warnings.warn(f"fastsoftmax: ignoring the profile {path}: {e}", RuntimeWarning, stacklevel=3)
        _status["reason"] = f"unreadable: {e}"
        return
    key = machine_key()
    entry = data["machines"].get(key)
    if entry is None:
        _status["reason"] = f"no entry for this machine ({key})"
        return
    _apply(entry)
    _status.update(applied=True, reason=None, key=key, tuned=entry.get("tuned"))


def save_entry(path: str, entry: Dict[str, Any]) -> str:
    """Store this machine's entry in the profile at path (other machines' entries kept),
    atomically; apply it to this process. Returns the machine key."""
    key = machine_key()
    data: Dict[str, Any] = {"format": FORMAT, "machines": {}}
    if os.path.exists(path):
        data = _read(path)
    data["machines"][key] = entry
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".profile-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _apply(entry)
    _status.update(path=path, applied=True, reason=None, key=key, tuned=entry.get("tuned"))
    return key


def limit_text(limit_bytes: int) -> str:
    """auto's reload limit for people: "512 KiB", or "none" (reload at any length).

    >>> limit_text(1 << 19), limit_text(2**63 - 1)
    ('512 KiB', 'none')
    """
    return "none" if limit_bytes >= 2**63 - 1 else f"{limit_bytes >> 10} KiB"


def status() -> Dict[str, Any]:
    """The profile as this process uses it, and auto's limit per dtype."""
    limits = {d: _core.auto_reload_limit(d) for d in DTYPES}
    return dict(_status, prefetch_min_elements=_core.prefetch_min_elements(),
                reload_limit_bytes={d: v["bytes"] for d, v in limits.items()},
                builtin_limit_bytes={d: v["builtin_bytes"] for d, v in limits.items()})
