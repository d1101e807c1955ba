"""Property tests: every parser of user or untrusted text gives a result or the documented
error (ValueError, InvalidSettings), never another exception, whatever it is given."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from docker_swap.errors import InvalidSettings
from docker_swap.options import MAX_DURATION, SWAP_KEYS, DeployOptions
from docker_swap.proxy.haproxy_runtime import (
    Setup,
    api_error,
    parse_servers_state,
    parse_sessions,
    parse_setup,
)
from docker_swap.proxy.nginx_config import parse_dump, parse_version, setup_problem
from docker_swap.settings import parse_duration, resolve_settings

NUMBERS = st.one_of(st.integers(), st.floats(), st.integers(-10, 10**6),
                    st.integers(10**300, 10**500))
JSON = st.recursive(st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=30)),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                        st.text(max_size=8), inner, max_size=4), max_leaves=8)


def text_of(*fragments: str) -> st.SearchStrategy[str]:
    """Lines made of meaningful fragments and noise, so that parsers go past their first test."""
    word = st.one_of(st.sampled_from(fragments), st.text(max_size=8),
                     st.integers().map(str), st.from_regex(r"[0-9]{1,30}", fullmatch=True))
    line = st.lists(word, max_size=24).map(" ".join)
    return st.lists(line, max_size=12).map("\n".join)


DURATION_TEXT = st.one_of(st.text(max_size=20), st.from_regex(
    r"([0-9]{1,400}(\.[0-9]{1,5})?(ms|s|m|h)){1,4}|[0-9]{1,400}(\.[0-9]{1,5})?", fullmatch=True))


@given(st.one_of(DURATION_TEXT, JSON))
def test_parse_duration_gives_a_bounded_duration_or_value_error(value: object) -> None:
    try:
        seconds = parse_duration(value)
    except ValueError:
        return
    assert math.isfinite(seconds) and 0 < seconds <= MAX_DURATION


@given(st.dictionaries(st.sampled_from([*SWAP_KEYS, "other"]), st.one_of(JSON, DURATION_TEXT),
                       max_size=6),
       st.dictionaries(st.sampled_from(SWAP_KEYS), st.one_of(st.none(), st.text(max_size=20)),
                       max_size=4))
def test_resolve_settings_gives_options_or_invalid_settings(
    x_swap: dict[str, object], flags: dict[str, object | None]
) -> None:
    try:
        options = resolve_settings("app", x_swap, flags)
    except InvalidSettings as refused:
        assert refused.message.endswith(".") and "\n" not in refused.message[:200]
        return
    assert isinstance(options, DeployOptions)
    for seconds in (options.timeout, options.drain_timeout, options.switch_timeout):
        assert math.isfinite(seconds) and 0 < seconds <= MAX_DURATION


NGINX = ("# configuration file", "/etc/nginx/nginx.conf:", "include", "/etc/nginx/docker-swap/",
         "upstream", "app", "{", "}", ";", "proxy_pass", "http://app", "http://app:80;",
         "fastcgi_pass", "app;", "#", "nginx/1.", "nginx version: nginx/1.27.4", ".")


@given(text_of(*NGINX), st.text(max_size=12))
def test_nginx_dump_parsers_give_results(dump: str, upstream: str) -> None:
    files = parse_dump(dump)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    problem = setup_problem(files, upstream or "app", "/etc/nginx/docker-swap")
    assert problem is None or problem.endswith(".")
    version = parse_version(dump)
    assert version is None or all(isinstance(part, int) for part in version)


HAPROXY = ("global", "defaults", "backend", "listen", "frontend", "app", "stats", "socket",
           "stats socket", "ipv4@127.0.0.1:9999", "/run/h.sock", "unix@/x", "abns@x", "$VAR",
           '"${VAR}"', "server", "server-template", "localhost:1", "10.0.0.1:80", "level",
           "admin", "server-state-file", "server-state-base", "load-server-state-from-file",
           "none", ":", "@", "#")


@given(text_of(*HAPROXY))
def test_parse_setup_gives_a_setup_or_value_error(config: str) -> None:
    try:
        setup = parse_setup(config)
    except ValueError as refused:
        assert "stats socket" in str(refused)
        return
    assert isinstance(setup, Setup)
    if setup.socket and not setup.socket.path:
        assert 0 < setup.socket.port < 65536


STATE = ("1", "3", "app", "app1", "10.0.0.2", "2", "0", "80", "-", "²", "٣", "-1")
STAT = ("# pxname,svname,scur,qcur", "app,app1,1,0", "app,BACKEND,3,0", ",", '"', "app", "x\0y")


@given(text_of(*STATE), text_of(*STAT), st.text(max_size=40))
def test_haproxy_answers_give_results(state: str, stat: str, answer: str) -> None:
    for slot in parse_servers_state(state):
        assert isinstance(slot.port, int) and isinstance(slot.admin_state, int)
    sessions = parse_sessions(stat.replace(" ", ","), "app")
    assert all(isinstance(n, int) for n in sessions.values())
    error = api_error(answer + "\n" + state)
    assert error is None or isinstance(error, str)
