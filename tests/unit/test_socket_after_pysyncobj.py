"""pysyncobj 0.3.17 swaps socket.inet_ntop for a Windows-only one; manager.state undoes it,
or pyroute2 cannot decode a single address in a coveyd that is also a manager."""
import socket

import manager.state.tables  # noqa: F401  (imports pysyncobj)


def test_inet_ntop_still_formats_addresses_after_pysyncobj_is_imported():
    assert socket.inet_ntop(socket.AF_INET, bytes([10, 0, 1, 7])) == "10.0.1.7"
    assert socket.inet_ntop(socket.AF_INET6, bytes(15) + b"\x01") == "::1"
