"""The dashboard plugin inside Airflow's real API app: it loads in the plugins manager with a UI navigation
entry, every request needs a valid Airflow JWT (Bearer header or the UI's `_token` cookie) of a user allowed
the website view, browsers without one are sent to Airflow's login, and nothing outside
`dashboards/latest/` can be reached."""

from __future__ import annotations

import importlib.util
import time

import jwt
import pytest

from tests.plugins.conftest import PLUGINS, SECRET

PREFIX = "/clinic-dashboards"


def token(role: str | None = "viewer", expires_in: int = 600) -> str:
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    user = SimpleAuthManagerUser(username=f"{role}-user", role=role)
    return get_auth_manager().generate_jwt(user, expiration_time_in_seconds=expires_in)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def test_plugin_loads_with_its_app_and_navigation_entry(plugins_loaded):
    from airflow import plugins_manager

    assert not [k for k in plugins_manager.get_import_errors() if "clinic_dashboards" in k]
    info = {p["name"]: p for p in plugins_manager.get_plugin_info()}
    plugin = info["clinic_dashboards"]
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == [PREFIX]
    assert plugin["external_views"] == [
        {
            "name": "Safety dashboard",
            "href": "clinic-dashboards/",
            "destination": "nav",
            "category": "browse",
            "url_route": "clinic-safety-dashboard",
        }
    ]
    apps, _ = plugins_manager.get_fastapi_plugins()
    assert [a["url_prefix"] for a in apps] == [PREFIX]


def test_the_ui_lists_the_plugin_view(client):
    response = client.get("/api/v2/plugins", headers=bearer(token()))
    assert response.status_code == 200
    views = [v for p in response.json()["plugins"] for v in p["external_views"]]
    expected = {"name": "Safety dashboard", "href": "clinic-dashboards/", "url_route": "clinic-safety-dashboard"}
    assert [v for v in views if expected.items() <= v.items()]


@pytest.mark.parametrize("path", ["/", "/data/ae.csv", "/views/", "/missing.html", "/%2e%2e/state/pseudonyms.parquet"])
def test_no_token_no_page(client, path):
    response = client.get(PREFIX + path, headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert b"SAFETY-DASHBOARD" not in response.content and SECRET not in response.content


def test_a_browser_without_a_session_is_sent_to_the_airflow_login(client):
    response = client.get(PREFIX + "/", headers={"Accept": "text/html,application/xhtml+xml"}, follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "/auth/login?next=http%3A%2F%2Ftestserver%2Fclinic-dashboards%2F"
    assert b"SAFETY-DASHBOARD" not in response.content


def test_bad_tokens_are_refused(client):
    from airflow.configuration import conf

    expired = token(expires_in=-3600)
    assert client.get(PREFIX + "/", headers=bearer(expired)).status_code == 401
    assert client.get(PREFIX + "/", headers=bearer("not-a-jwt")).status_code == 403
    claims = jwt.decode(token(), options={"verify_signature": False})
    forged = jwt.encode(claims, "not-the-airflow-secret-" + "x" * 48, algorithm="HS512")
    assert conf.get("api_auth", "jwt_secret") not in forged
    assert client.get(PREFIX + "/", headers=bearer(forged)).status_code == 403
    # A valid token of a user without the website view (no role): authenticated, not authorised.
    assert client.get(PREFIX + "/", headers=bearer(token(role=None))).status_code == 403
    # A bad explicit credential is refused even for a browser (no redirect loop hiding the error).
    response = client.get(PREFIX + "/", headers=bearer(expired) | {"Accept": "text/html"}, follow_redirects=False)
    assert response.status_code == 401


def test_signed_in_users_get_the_site_by_bearer_token_or_ui_cookie(client):
    response = client.get(PREFIX + "/", headers=bearer(token()))
    assert response.status_code == 200 and b"SAFETY-DASHBOARD-INDEX" in response.content
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"

    csv = client.get(PREFIX + "/data/ae.csv", headers=bearer(token("admin")))
    assert csv.status_code == 200 and csv.text == "term,patients\nnausea,<11\n"
    assert csv.headers["content-type"].startswith("text/csv")
    js = client.get(PREFIX + "/app.js", headers=bearer(token()))
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]

    client.cookies.set("_token", token())  # what the Airflow UI holds after login (the iframe sends it)
    try:
        assert b"SAFETY-DASHBOARD-INDEX" in client.get(PREFIX + "/").content
        head = client.head(PREFIX + "/data/ae.csv")
        assert head.status_code == 200 and head.content == b""
        folder = client.get(PREFIX + "/views", follow_redirects=False)
        assert folder.status_code == 307 and folder.headers["location"] == PREFIX + "/views/"
        assert client.get(PREFIX + "/views/").text == "VIEWS-INDEX"
        assert client.get(PREFIX + "/nothing-here.html").status_code == 404
    finally:
        client.cookies.clear()


@pytest.mark.parametrize(
    "path",
    [
        "/%2e%2e/%2e%2e/state/pseudonyms.parquet",
        "/..%2f..%2fstate%2fpseudonyms.parquet",
        "/%2e%2e/2026-01-01T000000/index.html",
        "/data/%2e%2e/%2e%2e/%2e%2e/state/pseudonyms.parquet",
        "/..%5c..%5cstate%5cpseudonyms.parquet",
        "/%2e/index.html",
        "/escape/pseudonyms.parquet",
        "/link.csv",
        "/.index.html.0a1b.tmp",
        "/%00index.html",
        "/%2fetc%2fpasswd",
        "//etc/passwd",
        "/C:%5cWindows%5cwin.ini",
    ],
)
def test_nothing_outside_the_published_site_is_served(client, path):
    response = client.get(PREFIX + path, headers=bearer(token("admin")))
    assert response.status_code == 404, (path, response.status_code)
    for forbidden in (SECRET, b"OLD-RUN", b"PARTIAL-WRITE", b"root:"):
        assert forbidden not in response.content, path


def test_path_checks_without_http():
    """The segment check on raw paths (an HTTP client may normalise dot segments before sending)."""
    spec = importlib.util.spec_from_file_location("clinic_dashboards_under_test", PLUGINS / "clinic_dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from fastapi import HTTPException

    assert module.safe_parts("data/ae.csv") == ["data", "ae.csv"]
    assert module.safe_parts("views/") == ["views"]
    for bad in ("../state", "data/../../x", "./index.html", "a/./b", ".hidden", "a\\..\\b", "a\x00", "c:/x"):
        with pytest.raises(HTTPException):
            module.safe_parts(bad)


def test_an_unpublished_dashboard_says_so(api_app, tmp_path, monkeypatch):
    from fastapi.testclient import TestClient

    monkeypatch.setenv("CLINIC_LAKE", str(tmp_path / "empty-lake"))
    with TestClient(api_app) as client:
        response = client.get(PREFIX + "/", headers=bearer(token()))
        assert response.status_code == 404 and "not published yet" in response.text
        assert client.get(PREFIX + "/", headers={"Accept": "application/json"}).status_code == 401


def test_token_lifetime_is_airflows(client):
    """The page accepts exactly what Airflow's API accepts: the same token works on /api/v2 and here."""
    value = token()
    claims = jwt.decode(value, options={"verify_signature": False})
    assert claims["exp"] > time.time()
    assert client.get("/api/v2/version", headers=bearer(value)).status_code == 200
    assert client.get(PREFIX + "/", headers=bearer(value)).status_code == 200
