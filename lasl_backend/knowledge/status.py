"""What ``lasl knowledge`` reports: each source, whether it is installed, and where LAC's cache lies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .cache import cache_root
from .lac import DISTRIBUTION, KnowledgeUnavailable, installed_version, load_lac_table
from .lexicon import SOURCES, build_lexicon


def _cache(cache: str | None) -> Path:
    return cache_root(cache)


def describe(cache: str | None = None) -> dict[str, Any]:
    """Each source: installed or not (and why), its size; reads LAC's table only if it is cached."""
    root = _cache(cache)
    version = installed_version()
    cached = root / f"{DISTRIBUTION}-{version}.npz" if version else None
    report: dict[str, Any] = {"cache": str(root), "sources": {}}
    lac = None
    if cached is not None and cached.is_file():
        lac = load_lac_table(root)
    report["sources"]["lac_vectors"] = {
        "available": version is not None, "package": f"{DISTRIBUTION} {version}" if version else None,
        "cached": str(cached) if cached is not None and cached.is_file() else None,
        **({"rows": int(lac.vectors.shape[0]), "dim": lac.dim} if lac is not None else {}),
        **({} if version else {"missing": f"{DISTRIBUTION} is not installed (pip install '.[knowledge]', or `make setup`)"}),
    }
    for name in SOURCES:
        if name == "lac" and lac is None:
            report["sources"]["lexicon:lac"] = {"available": version is not None, "terms": None}
            continue
        lexicon, missing = build_lexicon([name], lac=lac)
        report["sources"][f"lexicon:{name}"] = {"available": not missing, "terms": len(lexicon), **({"missing": missing[0]} if missing else {})}
    return report


def prepare(cache: str | None = None) -> dict[str, Any]:
    """Extract LAC's table into the cache now (a no-op when it is there), then describe."""
    try:
        load_lac_table(_cache(cache))
    except KnowledgeUnavailable as exc:
        report = describe(cache)
        report["prepare"] = f"not prepared: {exc}"
        return report
    return describe(cache)
