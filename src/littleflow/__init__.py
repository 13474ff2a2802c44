"""littleflow: a little workflow language and engine."""

from .errors import Diagnostic, FlowError
from .flow import Flow, Node

__version__ = "0.1.0"

__all__ = ["Diagnostic", "Flow", "FlowError", "Node", "__version__"]
