"""`covey swarm init`: the network defaults' flags go into SwarmInitRequest as given."""
import argparse

import pytest

from covey.cli import swarm
from covey.errors import InvalidArgument
from proto import local_pb2


class FakeNode:
    def __init__(self):
        self.requests: list[local_pb2.SwarmInitRequest] = []

    def SwarmInit(self, request):
        self.requests.append(request)
        return local_pb2.SwarmInitResponse(node_id="n1", worker_token="t", manager_addr="10.1.0.1:4242")


def init(*flags) -> local_pb2.SwarmInitRequest:
    parser = argparse.ArgumentParser()
    swarm.add_parser(parser.add_subparsers())
    node = FakeNode()
    swarm.init_swarm(type("Conn", (), {"node": node})(), parser.parse_args(["swarm", "init", *flags]))
    return node.requests[0]


def test_network_defaults_flags():
    request = init("--default-addr-pool", "10.20.0.0/16", "--default-addr-pool", "10.30.0.0/16",
                   "--default-addr-pool-mask-length", "26", "--data-path-port", "7789")
    assert list(request.default_addr_pools) == ["10.20.0.0/16", "10.30.0.0/16"]
    assert (request.default_addr_pool_mask_length, request.data_path_port) == (26, 7789)
    plain = init()
    assert (list(plain.default_addr_pools), plain.default_addr_pool_mask_length, plain.data_path_port) == ([], 0, 0)


def test_a_negative_port_is_refused_by_name():
    with pytest.raises(InvalidArgument, match="--data-path-port -1"):
        init("--data-path-port", "-1")
