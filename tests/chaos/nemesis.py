"""The chaos suite's nemeses: faults on the lab's manager hosts, each a start/heal pair
that records what it touched (the report, and the heal, use the record).

Every kernel object a nemesis makes is an nftables table named with the lab's prefix,
inside a lab host's network namespace; the small disks are ext4 loop devices whose images
and mount points are under the lab's directory. `heal` undoes exactly what `start` did,
and the suite heals whatever is still started at the end, also when a test fails.
"""
import signal
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

from deploy.lab import Host, Lab, in_netns
from manager.state.raft import crash
from tests.support.smalldisk import LoopDisk

LOSS_PERCENT = 30            # packets dropped by the packet-loss nemesis
CRASH_AFTER = 25             # the crash-point nemesis: passes through the point before the crash


@dataclass
class Fault:
    """What one start touched, for its heal and the report."""
    nemesis: str
    hosts: list[str]
    detail: str
    started: float = 0.0
    healed: float = 0.0
    recovered: float = 0.0       # the swarm healthy again (s after the heal)
    undo: list[Callable[[], None]] = field(default_factory=list, repr=False)


class Chaos:
    """The lab's managers and the faults started on them."""

    def __init__(self, lab: Lab, managers: list[Host], disks: dict[str, LoopDisk], workers: list[Host],
                 tasks: frozenset[tuple[str, str]]):
        self.lab = lab
        self.managers = managers
        self.disks = disks
        self.table = f"{lab.prefix.replace('-', '')}chaos"
        self.open_faults: list[Fault] = []
        self.crashes = 0             # crash-point faults so far: each takes the next point
        self.workers = workers       # hosts no fault touches
        self.tasks = tasks           # (worker, container) running on them

    # ------------------------------------------------------------ helpers

    def nft(self, host: Host, script: str) -> None:
        subprocess.run([*in_netns(host.netns), "nft", "-f", "-"], input=script, text=True, check=True,
                       capture_output=True)

    def drop_table(self, host: Host) -> None:
        subprocess.run([*in_netns(host.netns), "nft", "delete", "table", "inet", self.table], capture_output=True)

    def filter_rules(self, host: Host, inbound: str = "", outbound: str = "") -> None:
        """One table in `host`'s namespace with the given input and output rules."""
        self.nft(host, f"""table inet {self.table} {{
            chain input {{
                type filter hook input priority -10; policy accept;
                {inbound}
            }}
            chain output {{
                type filter hook output priority -10; policy accept;
                {outbound}
            }}
        }}""")

    def others(self, host: Host) -> list[Host]:
        return [m for m in self.managers if m is not host]

    @staticmethod
    def addrs(hosts: list[Host]) -> str:
        return "{ " + ", ".join(h.addr for h in hosts) + " }"

    # ------------------------------------------------------------ nemeses: start returns the fault

    def kill(self, host: Host) -> Fault:
        self.lab.stop_coveyd(host, signal.SIGKILL)
        return Fault("kill", [host.name], "SIGKILL coveyd", undo=[lambda: self.lab.start_coveyd(host)])

    def pause(self, host: Host) -> Fault:
        self.lab.pause_coveyd(host)
        return Fault("pause", [host.name], "SIGSTOP coveyd", undo=[lambda: self.lab.resume_coveyd(host)])

    def isolate(self, host: Host) -> Fault:
        """host on one side, the other managers on the other (minority/majority with 3)."""
        peers = self.addrs(self.others(host))
        self.filter_rules(host, inbound=f"ip saddr {peers} drop", outbound=f"ip daddr {peers} drop")
        return Fault("isolate", [host.name], f"nft drop to/from {peers}", undo=[lambda: self.drop_table(host)])

    def one_way(self, host: Host) -> Fault:
        """host's packets reach the others; theirs never reach it."""
        peers = self.addrs(self.others(host))
        self.filter_rules(host, inbound=f"ip saddr {peers} drop")
        return Fault("one-way", [host.name], f"nft drop from {peers} into it", undo=[lambda: self.drop_table(host)])

    def packet_loss(self, hosts: list[Host]) -> Fault:
        peers = self.addrs(self.managers)
        rule = f"ip saddr {peers} numgen random mod 100 < {LOSS_PERCENT} drop"
        for host in hosts:
            self.filter_rules(host, inbound=rule)
        return Fault("loss", [h.name for h in hosts], f"{LOSS_PERCENT}% of manager packets dropped",
                     undo=[lambda h=h: self.drop_table(h) for h in hosts])

    def disk_full(self, host: Host) -> Fault:
        disk = self.disks[host.name]
        disk.fill()
        return Fault("disk-full", [host.name], f"raft disk's free space taken by a file ({disk.size} bytes disk)",
                     undo=[disk.make_room])

    def read_only(self, host: Host) -> Fault:
        """An ext4 error on host's raft disk: read-only at once, for files already open too.
        Heal: stop that coveyd, repair the disk (umount, e2fsck, mount), start coveyd on the
        journal the read-only disk left."""
        disk = self.disks[host.name]
        disk.fail_read_only()

        def repair_and_restart():
            self.lab.stop_coveyd(host)
            disk.repair()
            self.lab.start_coveyd(host)
        return Fault("disk-read-only", [host.name], f"ext4 error on {disk.device}: remounted read-only",
                     undo=[repair_and_restart])

    def disk_full_then_kill(self, host: Host) -> Fault:
        """A full disk, then kill -9 while it is full: heal gives the space back first, then
        restarts coveyd on the journal the full disk left."""
        full, killed = self.disk_full(host), self.kill(host)
        return Fault("disk-full-kill", [host.name], f"{full.detail}; {killed.detail}", undo=full.undo + killed.undo)

    def crash_point(self, host: Host) -> Fault:
        """Restart coveyd armed to exit at a crash point (the next of crash.POINTS each time;
        some are reached only by a compaction, so it may not crash); heal restarts it unarmed."""
        point = f"{crash.POINTS[self.crashes % len(crash.POINTS)]}:{CRASH_AFTER}"
        self.crashes += 1
        self.lab.stop_coveyd(host)
        self.lab.start_coveyd(host, env={crash.ENV: point})
        fault = Fault("crash-point", [host.name], f"{crash.ENV}={point}")

        def restart():
            crashed = not self.lab.coveyd_running(host)
            fault.detail += "; it crashed there" if crashed else "; not reached"
            self.lab.stop_coveyd(host, signal.SIGKILL)
            self.lab.start_coveyd(host)
        fault.undo.append(restart)
        return fault

    # ------------------------------------------------------------ bookkeeping

    def started(self, fault: Fault, at: float) -> Fault:
        fault.started = at
        self.open_faults.append(fault)
        return fault

    def heal(self, fault: Fault, at: float) -> None:
        for undo in fault.undo:
            undo()
        fault.healed = at
        self.open_faults.remove(fault)

    def heal_all(self) -> None:
        """Whatever is still started (a test failed midway): undo it, best effort, all of it."""
        for fault in list(self.open_faults):
            for undo in fault.undo:
                try:
                    undo()
                except Exception as exc:  # noqa: BLE001  (go on healing the rest)
                    print(f"chaos: healing {fault} failed: {exc}")
            self.open_faults.remove(fault)
        for host in self.managers:
            self.drop_table(host)

    # ------------------------------------------------------------ partitions of 5 managers (test_partitions.py)

    def partition(self, nemesis: str, sees: dict[str, list[Host]]) -> Fault:
        """Each manager hears only the managers `sees` gives it by its name (a symmetric
        relation): one drop rule per pair that must not talk, in and out, in the host's own
        table; a host that sees every other gets no table. Heal drops exactly the tables made."""
        cut = {h.name: [m for m in self.others(h) if m not in sees[h.name]] for h in self.managers}
        undo = []
        for host in self.managers:
            if unseen := cut[host.name]:
                self.filter_rules(host, inbound="\n".join(f"ip saddr {m.addr} drop" for m in unseen),
                                  outbound="\n".join(f"ip daddr {m.addr} drop" for m in unseen))
                undo.append(lambda h=host: self.drop_table(h))
        views = "; ".join(f"{name} sees {','.join(m.name for m in seen) or 'none'}" for name, seen in sees.items())
        return Fault(nemesis, [name for name, unseen in cut.items() if unseen], f"nft drop per pair: {views}",
                     undo=undo)

    def ring(self, order: list[Host]) -> Fault:
        """Jepsen's majorities ring: each manager sees only its two neighbours in `order`
        (a ring): each has a majority of itself and them, and no two have the same one."""
        return self.partition("ring", {h.name: [order[i - 1], order[(i + 1) % len(order)]]
                                       for i, h in enumerate(order)})

    def bridge(self, left: list[Host], bridge: Host, right: list[Host]) -> Fault:
        """Two groups that do not see each other, and one manager (the bridge) that sees both."""
        sees = {h.name: [m for m in [*side, bridge] if m is not h] for side in (left, right) for h in side}
        return self.partition("bridge", sees | {bridge.name: [*left, *right]})

    def split(self, minority: list[Host]) -> Fault:
        """The managers in `minority` on one side, the rest on the other."""
        majority = [m for m in self.managers if m not in minority]
        fault = self.partition("split", {h.name: [m for m in side if m is not h]
                                         for side in (minority, majority) for h in side})
        fault.hosts = [h.name for h in minority]     # the side cut off, as isolate's host
        return fault
