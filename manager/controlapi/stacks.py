"""Stack handlers of the control API. BASE STUB: replaced by the stack work (issue 15)."""
from covey.errors import CoveyError
from manager.state import store as st


class StackAPI:
    def __init__(self, store: st.Store):
        self._store = store

    async def _todo(self, request):
        raise CoveyError("stacks are not built yet")

    def handlers(self) -> dict:
        return {name: self._todo for name in ("DeployStack", "ListStacks", "GetStack", "RemoveStack",
                                               "RollbackStack")}
