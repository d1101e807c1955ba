"""What is read from Redis is untrusted: parsed, checked and (with a key) verified, or refused."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from docker_swap.errors import InvalidSettings, ProxyConfigInvalid, RegistryDataInvalid
from docker_swap.models import Backend, check_backends
from docker_swap.proxy.nginx_config import render_upstream
from docker_swap.registry.data import (
    MAX_NUMBER,
    Report,
    Scope,
    encode_generation,
    encode_heartbeat,
    encode_report,
    heartbeat_alive,
    parse_generation,
    parse_number,
    parse_report,
    registry_key,
)
from docker_swap.settings import redact

KEY = b"0123456789abcdef0123456789abcdef"
PLAIN = Scope("demo", "app")
SIGNED = Scope("demo", "app", key=KEY)
GOOD = Backend("a" * 64, "demo-app-1", "10.0.0.1", 8000)
NGINX_INJECTION = ("127.0.0.1:9; } server { listen 8081; location / { return 200 pwned; } } "
                   "upstream zz { server 127.0.0.1")
HAPROXY_INJECTION = "10.0.0.9 port 80; shutdown frontend web"
FAST = settings(deadline=None, max_examples=200)

backends = st.builds(
    Backend,
    container_id=st.text("0123456789abcdef", min_size=12, max_size=64),
    name=st.from_regex(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,40}", fullmatch=True),
    address=st.one_of(st.ip_addresses().map(str)),
    port=st.integers(1, 65535),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def record(backend: dict[str, Any] | None = None, **extra: object) -> str:
    data = {"container_id": "a" * 64, "name": "demo-app-1", "address": "10.0.0.1",
            "port": 8000, **(backend or {})}
    return json.dumps({"backends": [data], "published_at": "now", **extra})


@FAST
@given(st.lists(backends, max_size=8), st.integers(1, MAX_NUMBER), st.booleans())
def test_what_a_deploy_writes_reads_back_the_same(
    written: list[Backend], number: int, signed: bool
) -> None:
    scope = SIGNED if signed else PLAIN
    text = encode_generation(scope, number, written, "2026-12-01T08:00:00.000+00:00")

    generation = parse_generation(scope, number, text)

    assert generation.backends == tuple(written) and generation.number == number


@FAST
@given(st.one_of(st.text(max_size=300), json_values.map(json.dumps), st.binary(max_size=64)))
def test_any_stored_text_is_a_generation_or_refused_never_an_other_error(text: object) -> None:
    try:
        generation = parse_generation(PLAIN, 3, text)
    except RegistryDataInvalid:
        return
    assert all(b.problem() is None for b in generation.backends)


@FAST
@given(st.dictionaries(st.sampled_from(["container_id", "name", "address", "port"]),
                       json_values, min_size=1))
def test_a_backend_is_refused_unless_every_field_is_what_it_claims(fields: dict[str, Any]) -> None:
    try:
        generation = parse_generation(PLAIN, 1, record(fields))
    except RegistryDataInvalid:
        return
    (backend,) = generation.backends
    assert backend.problem() is None
    assert isinstance(backend.port, int) and not isinstance(backend.port, bool)


@pytest.mark.parametrize(("text", "reason"), [
    (record({"name": NGINX_INJECTION}), "its name is not a Docker container name"),
    (record({"address": HAPROXY_INJECTION}), "its address is not an IPv4 or IPv6 address"),
    (record({"address": "fe80::1%eth0; shutdown frontend web"}), "its address"),
    (record({"port": True}), "its port"),
    (record({"port": 8000.0}), "its port"),
    (record({"port": 70000}), "its port"),
    (record({"container_id": "zz" * 32}), "its container ID"),
    (record({"extra": 1}), "does not have exactly the keys"),
    (record(signature_please=1), "unknown key signature_please"),
    (record(project="other"), "belongs to project other"),
    ('{"backends": [], "published_at": "now", "backends": []}', "not valid JSON"),
    ('{"backends": [], "published_at": NaN}', "not valid JSON"),
    ("[" * 100_000, "at most"),
    ("[" * 30_000, "not valid JSON"),
    ("abc", "not valid JSON"),
])
def test_forged_generations_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(RegistryDataInvalid, match=reason):
        parse_generation(PLAIN, 2, text)


@pytest.mark.parametrize("text", ["abc", "-1", "1.5", "", " 2", str(MAX_NUMBER + 1), "9" * 400])
def test_a_current_that_is_not_a_number_is_refused(text: str) -> None:
    with pytest.raises(RegistryDataInvalid, match=r"current is .* not a generation number"):
        parse_number(text, "current")


def test_a_signed_generation_cannot_be_altered_moved_or_left_unsigned() -> None:
    text = encode_generation(SIGNED, 7, [GOOD], "now")
    forged = json.loads(text)
    forged["backends"][0]["address"] = "10.0.0.66"

    for scope, number, stored, reason in [
        (SIGNED, 7, json.dumps(forged), "not valid for the registry key"),
        (SIGNED, 8, text, "not valid"),  # the same record under another number
        (replace(SIGNED, service="web"), 7, text, "belongs to service"),
        (replace(SIGNED, namespace="stack-b"), 7, text, "not valid"),
        (replace(SIGNED, key=b"another key of sixteen"), 7, text, "not valid"),
        (SIGNED, 7, encode_generation(PLAIN, 7, [GOOD], "now"), "not signed"),
        (SIGNED, 7, record(signature="z" * 64), "malformed"),
    ]:
        with pytest.raises(RegistryDataInvalid, match=reason):
            parse_generation(scope, number, stored)
    assert parse_generation(PLAIN, 7, text).backends == (GOOD,)  # no key: not checked


def test_reports_read_back_and_forged_ones_are_not_believed() -> None:
    report = Report("nginx:proxy", applied=4, drained=3, failed=2, error="x", at=1.5)
    text = encode_report(SIGNED, "edge-1", report)

    status = parse_report(SIGNED, "edge-1", text, alive=True)
    assert (status.applied, status.drained, status.failed, status.problem) == (4, 3, 2, "")

    forged = json.dumps({"proxy": "nginx:proxy", "applied": 9, "drained": 9})
    for scope, name, stored, problem in [
        (SIGNED, "edge-1", forged, "not signed"),
        (SIGNED, "edge-2", text, "not valid"),  # another agent's report, copied
        (PLAIN, "edge-1", json.dumps({"applied": "9"}), "applied is not a generation number"),
        (PLAIN, "edge-1", json.dumps({"applied": True}), "applied is not a generation number"),
        (PLAIN, "edge-1", json.dumps({"applied": 1, "evil": 1}), "unknown key evil"),
        (PLAIN, "edge-1", "{", "not valid JSON"),
        (PLAIN, "bad\nname", text, "its name is not valid"),
    ]:
        status = parse_report(scope, name, stored, alive=True)
        assert problem in status.problem
        assert (status.applied, status.drained, status.failed) == (0, 0, 0)


@FAST
@given(st.one_of(st.text(max_size=200), json_values.map(json.dumps)), st.text(max_size=30))
def test_any_report_is_a_status_never_an_exception(text: str, name: str) -> None:
    status = parse_report(SIGNED, name, text, alive=False)
    assert status.problem or status.applied >= 0
    assert status.name.isprintable()


def test_namespaces_keep_stacks_apart_and_the_key_is_never_shown() -> None:
    assert PLAIN.prefix == "docker-swap:demo:app:"
    assert replace(PLAIN, namespace="eu-1").prefix == "docker-swap@eu-1:demo:app:"
    assert "0123456789abcdef" not in repr(SIGNED)
    with pytest.raises(InvalidSettings, match="shorter than 16 characters") as refused:
        registry_key("short-key")
    assert "short-key" not in str(refused.value)


def test_drivers_refuse_backends_that_could_rewrite_a_proxy_configuration() -> None:
    with pytest.raises(ProxyConfigInvalid, match="its name is not a Docker container name"):
        render_upstream("app", [replace(GOOD, name=NGINX_INJECTION)], "now")
    with pytest.raises(ProxyConfigInvalid, match="its address is not an IPv4"):
        check_backends([replace(GOOD, address=HAPROXY_INJECTION)])
    with pytest.raises(ProxyConfigInvalid, match="its container ID"):
        render_upstream("app", [GOOD], "now", standby=[replace(GOOD, container_id="a\n}")])


passwords = st.text(st.characters(blacklist_categories=["Cs", "Cc", "Zs", "Zl", "Zp"]),
                    min_size=4, max_size=30)


@FAST
@given(passwords, st.sampled_from(["", "user", "default"]), st.sampled_from(
    ["redis", "rediss"]))
def test_redaction_hides_every_form_of_a_password(password: str, user: str, scheme: str) -> None:
    assume("\\" not in password and not password.isspace())
    host = "redis-host.example:6379"
    assume(password not in f"{scheme}://{user}:@{host}/0 failed")
    for url in (f"{scheme}://{user}:{password}@{host}/0",
                f"{scheme}://{host}/0?password={password.replace('&', '')}",
                f"{scheme}://{host}/0?db=1&ssl_password={password.replace('&', '')}"):
        shown = redact(f"Redis at {url} failed")
        assert password.replace("&", "") not in shown
        assert "***" in shown
    assert redact(f"{scheme}://{user}@{host}/0") == f"{scheme}://{user}@{host}/0"


def test_with_a_key_only_a_validly_signed_heartbeat_says_an_agent_is_alive() -> None:
    beat = encode_heartbeat(SIGNED, "edge-1", 12.5)
    assert heartbeat_alive(SIGNED, "edge-1", beat)
    assert not heartbeat_alive(SIGNED, "edge-2", beat), "another agent's heartbeat"
    assert not heartbeat_alive(SIGNED, "edge-1", "1"), "what anyone can write"
    assert not heartbeat_alive(SIGNED, "edge-1", encode_heartbeat(PLAIN, "edge-1", 12.5))
    assert not heartbeat_alive(SIGNED, "edge-1", None)
    assert heartbeat_alive(PLAIN, "edge-1", "1"), "no key: nothing is signed"


def test_a_report_carries_its_proxy_s_answer_counts_signed() -> None:
    report = Report("haproxy:proxy", applied=4, answers=(3, 120))
    status = parse_report(SIGNED, "edge-1", encode_report(SIGNED, "edge-1", report), alive=True)
    assert status.answers == (3, 120) and not status.problem
    forged = encode_report(SIGNED, "edge-1", report).replace("120", "121")
    assert parse_report(SIGNED, "edge-1", forged, alive=True).problem

