"""deploy/nginx/dashboard.conf, the dashboard web server's configuration, without nginx.

nginx is not installed here (and no Docker engine runs the image), so `nginx -t` cannot run. Instead the file
is tokenized and parsed the way nginx reads it (directives end with `;`, blocks with balanced braces, `#`
comments, quoted strings), every directive name is checked against the nginx directives it may use in that
context, and its meaning is checked against docker-compose.yml: the root is the lake's dashboards/latest as the
container mounts it, the password file is the compose secret, the port is the published and probed one.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.deploy.compose_model import REPO, compose, healthcheck_argv, mounts

CONF = REPO / "deploy" / "nginx" / "dashboard.conf"
# Directives of the nginx core, http, index, autoindex, charset, auth_basic, headers, rewrite and log modules,
# by the context they are allowed in (nginx.org/en/docs/dirindex.html).
SERVER_DIRECTIVES = {
    "listen", "server_name", "server_tokens", "root", "index", "autoindex", "charset", "auth_basic",
    "auth_basic_user_file", "add_header", "location", "access_log", "error_log", "error_page", "default_type",
    "return", "try_files", "client_max_body_size",
}  # fmt: skip
LOCATION_DIRECTIVES = SERVER_DIRECTIVES - {"listen", "server_name"} | {"limit_except", "deny", "allow"}
LIMIT_EXCEPT_DIRECTIVES = {"deny", "allow", "auth_basic", "auth_basic_user_file"}


@dataclass
class Directive:
    name: str
    args: list[str]
    block: list[Directive] | None = field(default=None)

    def find(self, name: str) -> list[Directive]:
        return [d for d in self.block or [] if d.name == name]

    def one(self, name: str) -> Directive:
        found = self.find(name)
        assert len(found) == 1, (name, found)
        return found[0]


def tokenize(text: str) -> list[str]:
    tokens, i = [], 0
    while i < len(text):
        char = text[i]
        if char.isspace():
            i += 1
        elif char == "#":
            i = text.find("\n", i) if "\n" in text[i:] else len(text)
        elif char in "{};":
            tokens.append(char)
            i += 1
        elif char in "\"'":
            end = text.index(char, i + 1)
            tokens.append(text[i : end + 1])
            i = end + 1
        else:
            start = i
            while i < len(text) and not text[i].isspace() and text[i] not in "{};\"'":
                i += 1
            tokens.append(text[start:i])
    return tokens


def parse(tokens: list[str]) -> list[Directive]:
    def block(position: int, closing: bool) -> tuple[list[Directive], int]:
        directives: list[Directive] = []
        words: list[str] = []
        while position < len(tokens):
            token = tokens[position]
            position += 1
            if token == ";":
                assert words, "empty statement"
                directives.append(Directive(words[0], words[1:]))
                words = []
            elif token == "{":
                assert words, "block without a directive"
                children, position = block(position, closing=True)
                directives.append(Directive(words[0], words[1:], children))
                words = []
            elif token == "}":
                assert closing and not words, "unexpected } or a directive without ;"
                return directives, position
            else:
                words.append(token.strip("\"'") if token[0] in "\"'" else token)
        assert not closing and not words, "unclosed block or a directive without ;"
        return directives, position

    return block(0, closing=False)[0]


@pytest.fixture(scope="module")
def server() -> Directive:
    top = parse(tokenize(CONF.read_text()))
    assert [d.name for d in top] == ["server"]  # a conf.d file: inside the image's http {} block
    return top[0]


def _check_names(block: list[Directive], allowed: set[str]) -> None:
    for directive in block:
        assert directive.name in allowed, directive.name
        if directive.name == "location":
            _check_names(directive.block, LOCATION_DIRECTIVES)
        elif directive.name == "limit_except":
            _check_names(directive.block, LIMIT_EXCEPT_DIRECTIVES)
        else:
            assert directive.block is None, directive.name


def test_the_parser_rejects_broken_configurations():
    for broken in ("server { listen 80 }", "server { listen 80;", "listen 80; }", "server { ; }"):
        with pytest.raises(AssertionError):
            parse(tokenize(broken))


def test_the_file_is_a_well_formed_server_block_with_known_directives(server):
    _check_names(server.block, SERVER_DIRECTIVES)


def test_root_is_dashboards_latest_of_the_lake_as_mounted_read_only(server):
    service = compose()["services"]["dashboard"]
    by_target = {m.target: m for m in mounts(service)}
    root = server.one("root").args[0]
    parent, leaf = root.rsplit("/", 1)
    assert leaf == "latest"
    # The parent is mounted, not latest/ itself: each publication swaps a new latest/ into place.
    assert by_target[parent].source == "./data/lake/dashboards" and by_target[parent].read_only
    assert by_target["/etc/nginx/conf.d/default.conf"].source == "./deploy/nginx/dashboard.conf"
    from clinic_pipeline.dashboard.build import DASHBOARDS_DIR, LATEST

    assert (DASHBOARDS_DIR, LATEST) == ("dashboards", "latest")
    assert server.one("autoindex").args == ["off"]


def test_basic_auth_reads_the_compose_secret(server):
    model = compose()
    service = model["services"]["dashboard"]
    assert service["secrets"] == ["dashboard_htpasswd"] and "dashboard_htpasswd" in model["secrets"]
    assert server.one("auth_basic_user_file").args == ["/run/secrets/dashboard_htpasswd"]
    assert server.one("auth_basic").args[0] != "off"


def test_the_listen_port_is_the_published_and_probed_one(server):
    service = compose()["services"]["dashboard"]
    port = server.one("listen").args[0]
    assert service["ports"][0].rsplit(":", 1)[1] == port
    _kind, argv = healthcheck_argv(service)
    assert argv[-1] == f"http://127.0.0.1:{port}/healthz"
    health = next(d for d in server.find("location") if d.args == ["=", "/healthz"])
    assert health.one("auth_basic").args == ["off"] and health.one("return").args[0] == "200"


def test_only_get_and_hidden_files_are_refused(server):
    root_location = next(d for d in server.find("location") if d.args == ["/"])
    assert root_location.one("limit_except").args == ["GET", "HEAD"]
    assert root_location.one("try_files").args[-1] == "=404"
    hidden = next(d for d in server.find("location") if d.args[0] == "~")
    assert hidden.args[1] == r"/\." and hidden.one("return").args == ["404"]


def test_security_headers_match_the_airflow_plugin_page(server):
    import importlib.util

    spec = importlib.util.spec_from_file_location("clinic_dashboards", REPO / "plugins" / "clinic_dashboards.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    headers = {d.args[0]: d.args[1] for d in server.find("add_header")}
    for name in plugin.SECURITY_HEADERS:
        assert name in headers, name
    assert headers["Cache-Control"] == plugin.SECURITY_HEADERS["Cache-Control"] == "no-store"
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]  # nobody frames it here
    assert all(d.args[-1] == "always" for d in server.find("add_header"))
