"""Where the registry's password, key and namespace come from; none of them is ever shown."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from docker_swap.errors import InvalidSettings
from docker_swap.registry.store import Registry, connect_registry
from docker_swap.settings import resolve_settings

KEY = "k" * 32


def connected(x_swap: Mapping[str, object], **flags: object) -> Registry:
    options = resolve_settings("app", {"proxy": "redis", **x_swap}, flags)
    return connect_registry(options, "demo", check=False)


def connection_kwargs(registry: Registry) -> dict[str, object]:
    return dict(registry._client.connection_pool.connection_kwargs)


@pytest.fixture(autouse=True)
def no_registry_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DOCKER_SWAP_REDIS_URL", "DOCKER_SWAP_REDIS_PASSWORD",
                 "DOCKER_SWAP_REGISTRY_KEY", "DOCKER_SWAP_REGISTRY_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)


def test_the_password_comes_from_a_file_or_the_environment_not_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "password").write_text("s3cr@t/pw\n")
    registry = connected({"redis": "redis://redis-host:6379/0"},
                         **{"redis-password-file": str(tmp_path / "password")})
    assert connection_kwargs(registry)["password"] == "s3cr@t/pw"

    monkeypatch.setenv("DOCKER_SWAP_REDIS_PASSWORD", "from-env")
    registry = connected({"redis": "redis://user@redis-host:6379/0"})
    assert connection_kwargs(registry)["password"] == "from-env"
    assert connection_kwargs(registry)["username"] == "user"


def test_a_password_given_twice_is_refused_without_showing_either(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_SWAP_REDIS_PASSWORD", "from-env")
    for url in ("redis://:in-url@redis-host/0", "redis://redis-host/0?password=in-url"):
        with pytest.raises(InvalidSettings, match="given twice") as refused:
            connected({"redis": url})
        assert "in-url" not in str(refused.value) and "from-env" not in str(refused.value)


def test_rediss_checks_the_host_name_and_a_url_cannot_turn_that_off() -> None:
    registry = connected({"redis": "rediss://:pw@redis-host:6380/0"})
    assert connection_kwargs(registry)["ssl_check_hostname"] is True
    assert connection_kwargs(registry)["ssl_cert_reqs"] == "required"
    for query in ("ssl_cert_reqs=none", "ssl_check_hostname=false"):
        with pytest.raises(InvalidSettings, match="always checks both") as refused:
            connected({"redis": f"rediss://:pw@redis-host:6380/0?{query}"})
        assert ":pw@" not in str(refused.value)


def test_the_key_comes_from_x_swap_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text(KEY + "\n")
    url = {"redis": "redis://redis-host/0"}
    assert not connected(url).signed
    assert connected({**url, "registry-key": KEY}).signed
    assert connected({**url, "registry-key": f"file:{tmp_path / 'key'}"}).signed
    monkeypatch.setenv("DOCKER_SWAP_REGISTRY_KEY_FILE", str(tmp_path / "key"))
    assert connected(url).signed

    with pytest.raises(InvalidSettings, match="cannot read the registry key file"):
        connected({**url, "registry-key": f"file:{tmp_path / 'missing'}"})
    with pytest.raises(InvalidSettings, match="x-swap key 'registry-key' has a value we cannot "
                       "use; expected a string") as refused:
        connected({**url, "registry-key": 1234567890123456789})
    assert "1234567890123456789" not in str(refused.value)


def test_a_namespace_keeps_two_stacks_apart() -> None:
    registry = connected({"redis": "redis://redis-host/0", "registry-namespace": "eu-1"})
    assert registry._key("current") == "docker-swap@eu-1:demo:app:current"
    with pytest.raises(InvalidSettings, match="registry-namespace"):
        connected({"redis": "redis://redis-host/0", "registry-namespace": "a:b"})
