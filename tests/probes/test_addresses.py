"""`probes.addresses.is_loopback`: the one check behind every bind and Host decision."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from probes.addresses import is_loopback


@pytest.mark.parametrize("host", ["localhost", "LOCALHOST", "127.0.0.1", "127.8.9.10", "::1", "[::1]"])
def test_loopback_hosts(host):
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.1", "192.168.1.2", "example.com", "localhost.evil.com",
                                  "127.0.0.1.nip.io", "", "[::ffff:8.8.8.8]"])
def test_other_hosts(host):
    assert not is_loopback(host)


@given(st.ip_addresses())
def test_an_ip_literal_is_loopback_exactly_when_ipaddress_says_so(ip):
    assert is_loopback(str(ip)) == ipaddress.ip_address(ip).is_loopback


@given(st.text())
def test_any_text_is_judged_without_raising(host):
    assert isinstance(is_loopback(host), bool)
