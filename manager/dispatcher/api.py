"""The dispatcher service (covey.Dispatcher, docs/design.md, "Control plane"), composed of its parts:
sessions and heartbeats, assignments, status reports, and the leader watch."""
from collections.abc import Callable

from manager.ca import authz
from manager.dispatcher.assignments import Assignments, StatusReports
from manager.dispatcher.leader import LeaderWatch
from manager.dispatcher.networkviews import NetworkViews
from manager.dispatcher.sessions import Sessions
from manager.dispatcher.status import StatusWriter
from manager.state import store as st


class Dispatcher:
    def __init__(self, store: st.Store, managers: Callable[[], list[str]],
                 leader_api_addr: Callable[[], str | None], leader_poll: float):
        self.sessions = Sessions(store, managers, leader_api_addr)
        self.leader = LeaderWatch(store.leader_addr, leader_api_addr, leader_poll)
        self.views = NetworkViews(store)
        assignments = Assignments(store, self.sessions, self.views)
        reports = StatusReports(store, self.sessions, StatusWriter(store))
        # Method name -> authz.Handler, for authz.serve.
        self.handlers: dict[str, authz.Handler] = {
            "Session": self.sessions.open, "Heartbeats": self.sessions.heartbeats,
            "Assignments": assignments.stream, "TaskStatusReports": reports.stream,
            "Leader": self.leader.stream, "Leave": self.sessions.leave}
