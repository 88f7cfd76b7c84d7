"""The compose loader: Compose Specification and Docker v3 stack files to a StackSpec."""
from covey.compose.errors import ComposeError
from covey.compose.loader import Loaded, load_model, load_stack, render_yaml

__all__ = ["ComposeError", "Loaded", "load_model", "load_stack", "render_yaml"]
