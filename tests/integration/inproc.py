"""In-process swarms on loopback: real managers, real TLS, real Raft."""
import socket

from coveyd.node import Node
from coveyd.settings import Settings
from proto import local_pb2


def free_port_pair() -> int:
    """A port P with P+1 also free (the API port and the Raft port next to it)."""
    for _ in range(50):
        with socket.socket() as a:
            a.bind(("127.0.0.1", 0))
            port = a.getsockname()[1]
            with socket.socket() as b:
                try:
                    b.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free pair of ports")


async def start_manager(tmp_path, name="m1", heartbeat="1s") -> Node:
    from covey.units import parse_duration
    node = Node(tmp_path / name, name, Settings())
    port = free_port_pair()
    await node.init(local_pb2.SwarmInitRequest(advertise_addr=f"127.0.0.1:{port}",
                                        listen_addr=f"127.0.0.1:{port}",
                                        heartbeat_period_ns=parse_duration(heartbeat)))
    return node

