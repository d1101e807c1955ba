from __future__ import annotations

from docker_swap.models import Backend
from docker_swap.proxy.nginx_config import (
    parse_dump,
    parse_version,
    render_upstream,
    sets_keepalive_min_timeout,
    setup_problem,
)

DIRECTORY = "/etc/nginx/docker-swap"


def dump(main: str, **others: str) -> dict[str, str]:
    text = f"nginx version: nginx/1.22.1\n# configuration file /etc/nginx/nginx.conf:\n{main}\n"
    for path, content in others.items():
        text += f"# configuration file {path}:\n{content}\n"
    return parse_dump(text)


GOOD = """
http {
    include /etc/nginx/docker-swap/*.conf;
    server { location / { proxy_pass http://app; } }
}
"""


def test_parse_dump_splits_files() -> None:
    files = dump(GOOD, **{"/etc/nginx/docker-swap/app.conf": "upstream app { server a:1; }"})
    assert list(files) == ["/etc/nginx/nginx.conf", "/etc/nginx/docker-swap/app.conf"]
    assert "proxy_pass http://app;" in files["/etc/nginx/nginx.conf"]


def test_a_good_setup_has_no_problem() -> None:
    ours = {"/etc/nginx/docker-swap/app.conf": "upstream app { server a:1; }"}
    assert setup_problem(dump(GOOD, **ours), "app", DIRECTORY) is None


def test_fastcgi_and_grpc_count_as_references() -> None:
    for line in ("fastcgi_pass app;", "grpc_pass grpc://app;", "uwsgi_pass app;",
                 "proxy_pass https://app/prefix/;"):
        config = GOOD.replace("proxy_pass http://app;", line)
        assert setup_problem(dump(config), "app", DIRECTORY) is None, line


def test_a_missing_include_says_what_to_add() -> None:
    config = GOOD.replace("include /etc/nginx/docker-swap/*.conf;", "")
    problem = setup_problem(dump(config), "app", DIRECTORY)
    assert problem is not None and "add `include /etc/nginx/docker-swap/*.conf;`" in problem


def test_a_commented_include_does_not_count() -> None:
    config = GOOD.replace("include /etc", "# include /etc")
    assert setup_problem(dump(config), "app", DIRECTORY) is not None


def test_a_port_on_the_reference_is_named_with_its_line() -> None:
    config = GOOD.replace("proxy_pass http://app;", "proxy_pass http://app:8000;")
    problem = setup_problem(dump(config), "app", DIRECTORY)
    assert problem == (
        "/etc/nginx/nginx.conf:5 sends to app:8000; drop the port so that it uses the upstream "
        "docker-swap writes: `server { location / { proxy_pass http://app; } }`."
    )


def test_no_reference_at_all() -> None:
    config = GOOD.replace("proxy_pass http://app;", "proxy_pass http://other;")
    problem = setup_problem(dump(config), "app", DIRECTORY)
    assert problem is not None
    assert "nothing in nginx's configuration sends to upstream app" in problem


def test_an_upstream_the_user_defined_is_refused() -> None:
    config = GOOD.replace("http {", "http {\n    upstream app { server x:1; }")
    problem = setup_problem(dump(config), "app", DIRECTORY)
    assert problem is not None and "defines upstream app itself" in problem


def test_keepalive_min_timeout_set_by_the_user_is_seen_and_ours_is_not() -> None:
    ours = {f"{DIRECTORY}/00-keepalive-min-timeout.conf": "keepalive_min_timeout 2s;"}
    assert not sets_keepalive_min_timeout(dump(GOOD, **ours), DIRECTORY)
    theirs = GOOD.replace("http {", "http {\n    keepalive_min_timeout 5s;")
    assert sets_keepalive_min_timeout(dump(theirs), DIRECTORY)


def test_versions() -> None:
    assert parse_version("nginx version: nginx/1.30.6") == (1, 30, 6)
    assert parse_version("nginx version: openresty/1.25.3.1") is None


def test_render_writes_addresses_and_names_the_containers_in_comments() -> None:
    text = render_upstream("app", [Backend("a" * 64, "demo-app-2", "10.0.0.2", 8000),
                                   Backend("b" * 64, "demo-app-3", "fd00::3", 8000)], "now")
    assert ("upstream app {\n    server 10.0.0.2:8000;  # demo-app-2 aaaaaaaaaaaa\n"
            "    server [fd00::3]:8000;  # demo-app-3 bbbbbbbbbbbb\n}") in text
