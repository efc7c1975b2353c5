"""Airflow plugin: the safety dashboard, served behind Airflow's login, with an entry in the UI navigation.

Mounted by the api-server at `/clinic-dashboards/` (Airflow 3 `fastapi_apps`); it serves the static site the
safety DAG publishes in the lake's `dashboards/latest/` (lake root: CLINIC_LAKE, as for every task). The UI
gets a "Safety dashboard" entry under Browse (`external_views`) that opens the page in an iframe at
`/plugin/clinic-safety-dashboard`.

Authentication is Airflow's own: `airflow.api_fastapi.core_api.security.get_user` accepts the JWT as an
`Authorization: Bearer` header or as the `_token` cookie the Airflow UI holds after login (same origin, so the
iframe and every relative request of the page carry it). The user must then be allowed the Airflow website
view (`is_authorized_view(AccessView.WEBSITE)`: any role from Viewer up, with the Simple and the FAB auth
managers). Without a valid token a browser page request is redirected to Airflow's login (and back after it);
any other request gets 401 (no/expired token) or 403 (invalid token, or a user without the website view).

Only files under `dashboards/latest/` are served: a path with `..`, `.`, a hidden segment (the lake's temp
files of atomic writes start with a dot), a backslash or NUL is refused (404), and a local file whose real
path (symlinks resolved) is outside that folder too. Responses are `no-store` (the serious-event listing is
pseudonymous but person-level) and may be framed only by Airflow itself.

Changes here need an api-server restart. Heavy Airflow modules are imported per request, not at import:
every Airflow component loads the plugins folder.
"""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import Any, ClassVar

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

URL_PREFIX = "/clinic-dashboards"
UI_ROUTE = "clinic-safety-dashboard"
SITE = ("dashboards", "latest")
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The site is self-contained (no CDN): nothing outside this origin is loaded or contacted, and only
    # Airflow's own pages may frame it.
    "Content-Security-Policy": (
        "default-src 'self' 'unsafe-inline' data: blob:; frame-ancestors 'self'; base-uri 'self'; form-action 'self'"
    ),
}


def lake_root() -> str:
    """The lake root as the pipeline's tasks resolve it (CLINIC_LAKE, else CLINIC_DATA/lake, else ./data/lake)."""
    try:
        from clinic_pipeline.orchestration.settings import lake_root as pipeline_lake_root

        return pipeline_lake_root()
    except ImportError:  # the api-server image without the pipeline package: same rule, from the environment
        return os.environ.get("CLINIC_LAKE", str(Path(os.environ.get("CLINIC_DATA", Path.cwd() / "data")) / "lake"))


def site_root() -> Any:
    """`dashboards/latest` of the lake: a local Path, or a UPath for an object-store lake."""
    root = lake_root()
    if "://" in root and not root.startswith("file://"):
        from upath import UPath

        return UPath(root).joinpath(*SITE)
    return Path(root.removeprefix("file://")).joinpath(*SITE)


# --- authentication ------------------------------------------------------------------------------------------


class LoginRequired(Exception):
    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.location = location


def _wants_html(request: Request) -> bool:
    return request.method in ("GET", "HEAD") and "text/html" in request.headers.get("accept", "")


async def require_airflow_user(request: Request) -> Any:
    """The authenticated Airflow user allowed the website view; else 401/403 (or the login page, for a browser)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    try:
        user = await get_user(request, None, credentials)
    except HTTPException as error:
        if error.status_code in (401, 403) and credentials is None and _wants_html(request):
            raise LoginRequired(get_auth_manager().get_url_login(next_url=str(request.url))) from error
        raise
    if not get_auth_manager().is_authorized_view(access_view=AccessView.WEBSITE, user=user):
        raise HTTPException(status_code=403, detail="Forbidden")
    return user


# --- static files -------------------------------------------------------------------------------------------


def safe_parts(path: str) -> list[str]:
    """The path's segments, or 404 for anything that could leave the site or reach a hidden file."""
    parts = path.split("/")
    for part in parts:
        if part in ("..", ".") or part.startswith(".") or "\\" in part or "\x00" in part or ":" in part:
            raise HTTPException(status_code=404, detail="Not found")
    return [p for p in parts if p]


def _local_target(base: Path, parts: list[str]) -> Path:
    target = base.joinpath(*parts)
    real_base = base.resolve()
    real = target.resolve()
    if real != real_base and real_base not in real.parents:  # a symlink pointing out of the site
        raise HTTPException(status_code=404, detail="Not found")
    return target


def _content_type(name: str) -> str:
    kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
    return f"{kind}; charset=utf-8" if kind.startswith("text/") or kind in ("application/javascript",) else kind


NOT_PUBLISHED = """<!doctype html><html><head><meta charset="utf-8"><title>Safety dashboard</title></head>
<body style="font-family: sans-serif; margin: 2em"><h1>Safety dashboard not published yet</h1>
<p>No dashboard in the lake's <code>dashboards/latest/</code>. It is published by the safety DAG (or
<code>clinic-pipeline run</code>) after the marts are built.</p></body></html>"""

app = FastAPI(
    title="Clinic safety dashboard",
    description="The safety dashboard published in the lake, behind Airflow's authentication.",
    docs_url=None,
    redoc_url=None,
    openapi_url=None,
)


@app.exception_handler(LoginRequired)
async def _to_login(request: Request, error: LoginRequired) -> RedirectResponse:
    return RedirectResponse(error.location, status_code=307, headers={"Cache-Control": "no-store"})


PROTECTED = {"methods": ["GET", "HEAD"], "include_in_schema": False, "dependencies": [Depends(require_airflow_user)]}


@app.api_route("/", **PROTECTED)
@app.api_route("/{path:path}", **PROTECTED)
async def serve(request: Request, path: str = "") -> Response:
    """A file of the published site (authentication and authorisation ran first, as a dependency)."""
    parts = safe_parts(path)
    base = site_root()
    target = _local_target(base, parts) if isinstance(base, Path) else base.joinpath(*parts)
    if target.is_dir():
        if parts and not path.endswith("/"):  # relative links of the page need the trailing slash
            return RedirectResponse(request.url.path + "/", status_code=307, headers=SECURITY_HEADERS)
        target = target / "index.html"
        if not parts and not target.exists():
            return HTMLResponse(NOT_PUBLISHED, status_code=404, headers=SECURITY_HEADERS)
    if not target.is_file():
        if not parts and not base.exists():
            return HTMLResponse(NOT_PUBLISHED, status_code=404, headers=SECURITY_HEADERS)
        raise HTTPException(status_code=404, detail="Not found")
    if isinstance(target, Path):
        return FileResponse(target, media_type=_content_type(target.name), headers=SECURITY_HEADERS)
    return Response(target.read_bytes(), media_type=_content_type(target.name), headers=SECURITY_HEADERS)


class ClinicDashboardsPlugin(AirflowPlugin):
    name = "clinic_dashboards"
    fastapi_apps: ClassVar[list[dict[str, Any]]] = [
        {"app": app, "url_prefix": URL_PREFIX, "name": "Clinic safety dashboard"}
    ]
    external_views: ClassVar[list[dict[str, Any]]] = [
        {
            "name": "Safety dashboard",
            "href": URL_PREFIX.lstrip("/") + "/",  # relative to the UI's <base href> (honours [api] base_url)
            "destination": "nav",
            "category": "browse",
            "url_route": UI_ROUTE,
        }
    ]
