"""Secret and config handlers of the control API. BASE STUB: replaced by the secrets work
(issue 15)."""
from covey.errors import CoveyError
from manager.state import store as st


class SecretAPI:
    def __init__(self, store: st.Store):
        self._store = store

    async def _todo(self, request):
        raise CoveyError("secrets and configs are not built yet")

    def handlers(self) -> dict:
        names = ("CreateSecret", "ListSecrets", "GetSecret", "RemoveSecret",
                 "CreateConfig", "ListConfigs", "GetConfig", "RemoveConfig")
        return {name: self._todo for name in names}
