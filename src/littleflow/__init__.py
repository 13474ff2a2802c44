"""littleflow: a little workflow language and engine."""

from .compiler import Compiler
from .errors import Diagnostic, FlowError
from .flow import Flow, Node
from .parser import Parser

__version__ = "0.1.0"


def compile_flow(text: str, file: str | None = None) -> Flow:
    """Parse and compile flow text in one step (``file`` names it in errors)."""
    return Compiler().compile(Parser().parse(text, file))


__all__ = ["Compiler", "Diagnostic", "Flow", "FlowError", "Node", "Parser", "compile_flow", "__version__"]
