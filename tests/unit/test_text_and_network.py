"""Pure pieces: escaping user input for messages and logs, choosing subnets, reading routes."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from core.engine import NetworkInfo
from core.network import NetworkError, NetworkPlan, engine_subnets, free_subnet, gateway_address, host_routes
from core.text import printable, quoted_names
from gateway.dashboards import Viewer, may_view, token_from_header


def test_printable_escapes_controls_and_bidi_and_is_bounded() -> None:
    assert printable("a\x00b\nc\u202ed") == "a\\x00b\\nc\\u202ed"
    assert printable("é ok") == "é ok"
    long = printable("x" * 10_000, limit=50)
    assert len(long) == 50 and long.endswith("…")


def test_quoted_names_are_few_short_and_escaped() -> None:
    names = ["k" * 1000, "evil\u202e\x00", *(f"n{i}" for i in range(10))]
    shown = quoted_names(names)
    assert len(shown) < 200 and "\u202e" not in shown and "and 7 more" in shown


def test_a_free_subnet_overlaps_no_network_and_no_route() -> None:
    plan = NetworkPlan.of("t", "10.213.0.0/16", 24)
    used = [ipaddress.IPv4Network("10.213.0.0/24"), ipaddress.IPv4Network("10.213.1.0/25")]
    assert free_subnet(plan, used) == ipaddress.IPv4Network("10.213.2.0/24")
    full = [ipaddress.IPv4Network("10.213.0.0/16")]
    with pytest.raises(NetworkError, match="no free /24"):
        free_subnet(plan, full)


def test_network_plan_names_and_bad_settings() -> None:
    plan = NetworkPlan.of("prod", "10.9.0.0/16", 26)
    assert plan.titan_network() == "prod-titan"
    assert plan.user_network("Alice.B") == "prod-user-alice-2eb"
    with pytest.raises(ValueError, match="subnet_prefix"):
        NetworkPlan.of("x", "10.9.0.0/16", 8)
    with pytest.raises(ValueError, match="has host bits set"):
        NetworkPlan.of("x", "10.9.0.1/16", 24)


def test_engine_subnets_and_gateway_come_from_the_engines_answers() -> None:
    networks = [NetworkInfo("1", "bridge", subnets=("172.17.0.0/16",), gateway="172.17.0.1"),
                NetworkInfo("2", "v6", subnets=("fd00::/64",)), NetworkInfo("3", "none")]
    assert engine_subnets(networks) == [ipaddress.IPv4Network("172.17.0.0/16")]
    assert gateway_address(networks[0]) == "172.17.0.1"


def test_host_routes_read_the_kernels_table(tmp_path: Path) -> None:
    table = tmp_path / "route"
    table.write_text("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\n"
                     "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\n"  # default: uses no subnet
                     "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\n")  # 192.0.2.0/24
    assert host_routes(table) == [ipaddress.IPv4Network("192.0.2.0/24")]


def test_the_dashboard_rule_and_token_schemes() -> None:
    assert may_view(Viewer("alice", False), "alice")
    assert not may_view(Viewer("bob", False), "alice")
    assert may_view(Viewer("root", True), "alice")
    assert token_from_header("token abc") == "abc" and token_from_header("Bearer abc") == "abc"
    assert token_from_header("jupyterhub abc") == "abc" and token_from_header("Basic abc") is None
    assert token_from_header("token ") is None
