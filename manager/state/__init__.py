"""The replicated store and what runs on it.

pysyncobj 0.3.17 replaces `socket.inet_ntop` with a Windows-only version on every platform
(pysyncobj/win_inet_pton.py, imported by its TCP transport); anything else in the process
that formats an address (pyroute2 decoding netlink messages) then fails. Import it here,
before any module of this package uses it, and put the real function back.
"""
import _socket
import socket

import pysyncobj.tcp_connection  # noqa: F401  (the import that patches socket)

socket.inet_ntop = _socket.inet_ntop
