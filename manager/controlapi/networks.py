"""Network handlers of the control API (`covey network ...`). BASE STUB: replaced by the
network work (issue 13) before it lands."""
from covey.errors import CoveyError
from manager.state import store as st


class NetworkAPI:
    def __init__(self, store: st.Store):
        self._store = store

    async def _todo(self, request):
        raise CoveyError("networks are not built yet")

    create = list = get = remove = prune = _todo
