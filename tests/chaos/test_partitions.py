"""Network partitions of 5 managers (issue 12): Jepsen's majorities ring and bridge, and a
2 | 3 split with the leader in the minority, each faulting a 5-manager lab of its own while
the clients run; then the checks of tests/chaos/runner.py (linearizable history with final
reads from every manager, convergence, recovery time per fault, no traceback).

CI runs one short fault per nemesis; COVEY_CHAOS_SOAK=SECONDS soaks each (runner.py).
"""
import pytest

from deploy.lab import Host
from tests.chaos.conftest import chaos_lab
from tests.chaos.nemesis import Chaos, Fault
from tests.chaos.runner import history_stays_linearizable
from tests.support.poll import wait_until

MANAGERS = 5
LEADERSHIP_TIMEOUT = 5.0     # s more than the fault's hold for the leaders to be as they must
LEADERSHIP = "raft: this manager is now the leader", "raft: this manager is no longer the leader"


@pytest.fixture(scope="module")
def chaos():
    """This module's lab: 5 managers (overrides conftest's 3 here)."""
    yield from chaos_lab(MANAGERS)


def led_by(leader: Host, fault: Fault) -> Fault:
    """The report says who led when the fault started."""
    fault.detail = f"{leader.name} leading; {fault.detail}"
    return fault


def ring(chaos: Chaos, leader: Host, follower: Host) -> Fault:
    """host1-host2-host3-host4-host5-host1."""
    return led_by(leader, chaos.ring(chaos.managers))


def bridge_leader_in_a_group(chaos: Chaos, leader: Host, follower: Host) -> Fault:
    """The leader and a follower | a bridge | two followers."""
    others = [m for m in chaos.managers if m is not leader]
    return led_by(leader, chaos.bridge([leader, others[0]], others[1], others[2:]))


def bridge_leader_is_bridge(chaos: Chaos, leader: Host, follower: Host) -> Fault:
    """Two followers | the leader | two followers."""
    others = [m for m in chaos.managers if m is not leader]
    return led_by(leader, chaos.bridge(others[:2], leader, others[2:]))


def split_leader_in_minority(chaos: Chaos, leader: Host, follower: Host) -> Fault:
    """The leader and a follower | the other three."""
    return led_by(leader, chaos.split([leader, follower]))


NEMESES = {
    "ring": ring,
    "bridge-leader-in-a-group": bridge_leader_in_a_group,
    "bridge-leader-is-bridge": bridge_leader_is_bridge,
    "split-leader-in-minority": split_leader_in_minority,
}


def leads(host: Host) -> bool:
    """Whether the manager says it leads: its log's last leadership line (store.py)."""
    lines = [line for line in host.log_file.read_text().splitlines() if line.endswith(LEADERSHIP)]
    return bool(lines) and lines[-1].endswith(LEADERSHIP[0])


def leaders_while_faulted(chaos: Chaos, fault: Fault, logs: dict[str, int]) -> None:
    """Who was elected while the fault lasted goes into its report; and in a split, the
    majority has a leader and the minority none (a leader cut off steps down: store.py's
    leader_fallback)."""
    elected = sorted((line.split(" INFO ")[0], h.name) for h in chaos.managers      # (its log's time, name)
                     for line in h.log_file.read_text()[logs[h.name]:].splitlines() if line.endswith(LEADERSHIP[0]))
    fault.detail += f"; elected while it lasted, in turn: {[name for _, name in elected] or 'none'}"
    if fault.nemesis != "split":
        return
    seen: list[list[str]] = []

    def one_leader_in_the_majority():
        seen.append(leaders := [h.name for h in chaos.managers if leads(h)])
        return len(leaders) == 1 and leaders[0] not in fault.hosts
    try:
        wait_until(one_leader_in_the_majority, LEADERSHIP_TIMEOUT, 0.2, "one leader, on the majority's side")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}: minority {fault.hosts}, leading by their logs: {seen[-1]}") from None


@pytest.mark.parametrize("nemesis", list(NEMESES))
def test_history_stays_linearizable(chaos, nemesis):
    assert len(chaos.managers) == MANAGERS
    history_stays_linearizable(chaos, nemesis, NEMESES[nemesis], f"p{list(NEMESES).index(nemesis)}",
                               leaders_while_faulted)
