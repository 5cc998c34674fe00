"""Unit tests: pure rules, no network (sockets are blocked)."""

import pytest
from pytest_socket import disable_socket, enable_socket


@pytest.fixture(autouse=True)
def _no_network():
    disable_socket()
    yield
    enable_socket()
