"""Third-party browser libraries of the dashboard, served from the pip packages that ship them.

The page needs a chart library and a table library. Both come from Python packages the
dashboard depends on, so they are on disk after ``pip install flowscope`` and work
offline: nothing is copied into this repository and nothing is loaded from a CDN.

- ``plotly`` ships the plotly.js bundle as ``plotly/package_data/plotly.min.js``.
- ``itables`` ships DataTables 2 (with jQuery) as one ES module,
  ``itables/html/dt_bundle.js``, and its stylesheet ``dt_bundle.css``.

:func:`mount_assets` adds one GET route per file under ``/vendor/``. A missing package
turns its route into a 404 with a one-line reason instead of breaking the app: the page
then says which library is missing and keeps its live counters working.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response

VENDOR_PREFIX = "/vendor"
# Immutable for a given installed version; a day of browser caching keeps reloads fast
# without pinning an old file across upgrades for long.
_CACHE = "public, max-age=86400"


@dataclass(frozen=True)
class Asset:
    """One file of an installed package, served at ``/vendor/<name>``."""

    name: str
    package: str
    relpath: str
    media_type: str

    def path(self) -> Path | None:
        """Where the installed package keeps the file, or None when it is not installed.

        ``find_spec`` locates the package without importing it: importing plotly or itables
        would pull in their Python sides (and, for plotly, pandas-style machinery) for no use.
        """
        try:
            spec = importlib.util.find_spec(self.package)
        except (ImportError, ValueError):
            return None
        if spec is None or not spec.submodule_search_locations:
            return None
        for base in spec.submodule_search_locations:
            p = Path(base) / self.relpath
            if p.is_file():
                return p
        return None


ASSETS: tuple[Asset, ...] = (
    Asset("plotly.min.js", "plotly", "package_data/plotly.min.js", "text/javascript"),
    Asset("datatables.mjs", "itables", "html/dt_bundle.js", "text/javascript"),
    Asset("datatables.css", "itables", "html/dt_bundle.css", "text/css"),
)


def asset_paths() -> dict[str, Path | None]:
    """Each served name and the file behind it (None = package missing), for diagnostics."""
    return {a.name: a.path() for a in ASSETS}


def mount_assets(app: FastAPI) -> None:
    """Add ``GET /vendor/<name>`` for every asset in :data:`ASSETS`.

    Paths are resolved once here, at app creation; the routes never take a path from the
    request, so there is no traversal to guard against.
    """
    for asset in ASSETS:
        _add_route(app, asset, asset.path())


def _add_route(app: FastAPI, asset: Asset, path: Path | None) -> None:
    # A factory per asset so each route closes over its own file (not the loop variable).
    url = f"{VENDOR_PREFIX}/{asset.name}"

    def serve() -> Response:
        if path is None or not path.is_file():
            return JSONResponse(
                {"detail": f"{asset.name} is missing: pip install {asset.package}"},
                status_code=404,
            )
        return FileResponse(path, media_type=asset.media_type, headers={"Cache-Control": _CACHE})

    app.add_api_route(url, serve, methods=["GET", "HEAD"], include_in_schema=False, name=asset.name)
