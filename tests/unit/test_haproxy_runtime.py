from __future__ import annotations

from docker_swap.proxy.haproxy_runtime import (
    Socket,
    api_error,
    parse_servers_state,
    parse_sessions,
    parse_setup,
    placeholder_is_an_address,
    servers_state_part,
)

STATE = """1
# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state (... the rest)
3 app 1 app1 10.0.0.2 2 4 1 1 9 1 0 0 8 0 0 0 localhost 8000 - 0 0 - - 0
3 app 2 app2 10.0.0.3 2 12 1 1 2 1 0 0 8 0 0 0 localhost 8000 - 0 0 - - 0
3 app 3 app3 127.0.0.1 0 5 1 1 9 1 0 0 8 0 0 0 localhost 1 - 0 0 - - 0

"""

CONFIG = """
global
    stats socket ipv4@127.0.0.1:9999 level admin   # the runtime API
    server-state-base /var/lib/haproxy
    server-state-file docker-swap/servers
defaults
    mode http
    load-server-state-from-file global
frontend web
    bind :80
    default_backend app
backend app
    balance roundrobin
    server-template app 4 localhost:1 disabled
"""


def test_servers_state() -> None:
    slots = parse_servers_state(STATE)
    assert [(s.name, s.address, s.port) for s in slots] == [
        ("app1", "10.0.0.2", 8000), ("app2", "10.0.0.3", 8000), ("app3", "127.0.0.1", 1)]
    serving, draining, free = slots
    assert serving.serving and not serving.in_maintenance and not serving.draining
    assert draining.draining and not draining.serving
    assert free.in_maintenance and not free.serving


def test_the_servers_state_after_set_commands_starts_at_its_version_line() -> None:
    """A state file HAProxy reads back must start there: `set server ... addr` answers with a
    sentence first (HAProxy 2.6 and 3.2), the other `set`s with blank lines."""
    said = ("IP changed from '127.0.0.1' to '10.0.0.2', port changed from '1' to '8000' by "
            "'stats socket command'.\n\n\n")
    assert servers_state_part(said + STATE) == STATE
    assert servers_state_part("\n\n" + STATE) == STATE
    assert parse_servers_state(servers_state_part(said + STATE)) == parse_servers_state(STATE)


def test_sessions_of_one_backend() -> None:
    stat = ("# pxname,svname,qcur,qmax,scur,smax\n"
            "web,FRONTEND,,,7,9\napp,app1,0,0,3,4\napp,app2,1,0,2,2\napp,BACKEND,0,0,5,6\n"
            "other,app1,0,0,9,9\n")
    assert parse_sessions(stat, "app") == {"app1": 3, "app2": 3}


def test_setup() -> None:
    setup = parse_setup(CONFIG)
    assert setup.socket == Socket(host="127.0.0.1", port=9999)
    assert setup.state_file == "/var/lib/haproxy/docker-swap/servers"
    assert setup.loads_state
    assert setup.backends == {"app": ["server-template app 4 localhost:1 disabled"]}


def test_sockets() -> None:
    def socket(line: str) -> Socket | None:
        return parse_setup(f"global\n    {line}\n").socket

    assert socket("stats socket /run/haproxy.sock mode 600 level admin") == Socket(
        path="/run/haproxy.sock")
    assert socket("stats socket unix@/run/h.sock") == Socket(path="/run/h.sock")
    assert socket("stats socket :9999 level admin") == Socket(host="127.0.0.1", port=9999)
    assert socket("stats socket ipv4@0.0.0.0:9999") == Socket(host="127.0.0.1", port=9999)
    assert socket("stats timeout 30s") is None


def test_placeholders() -> None:
    assert placeholder_is_an_address("server-template app 4 127.0.0.1:1 disabled")
    assert placeholder_is_an_address("server app1 10.0.0.1:80")
    assert not placeholder_is_an_address("server-template app 4 localhost:1 disabled")
    assert not placeholder_is_an_address("server app1 app:80 check")


def test_api_errors() -> None:
    assert api_error("No such server.\n") == "No such server."
    assert api_error("Unknown command. Please enter one of the following commands only :\n")
    assert api_error("IP changed from '127.0.0.1' to '10.0.0.2' by 'stats socket command'\n") \
        is None
    assert api_error("\n") is None
