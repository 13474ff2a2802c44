"""littleflow: a little workflow language and engine.

The public names are loaded when first asked for (as in ``littleflow.redis``), so that
importing one module of the package, or starting the ``littleflow`` command, loads only
what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .lazy import lazy_names

if TYPE_CHECKING:
    from .compiler import Compiler, compile_flow
    from .context import Context, Ending, FlowContext, Runner
    from .engine import Engine, Start
    from .errors import Diagnostic, FlowError, LittleflowError
    from .flow import Flow, Node
    from .local import FlowFailed, UnknownTasks, run_workflow
    from .parser import Parser
    from .state import State
    from .taskrun import TaskRun, current
    from .tasks import Fail, Registry, task

__version__ = "0.1.0"

__all__ = [
    "Compiler",
    "Context",
    "Diagnostic",
    "Ending",
    "Engine",
    "Fail",
    "Flow",
    "FlowContext",
    "FlowError",
    "FlowFailed",
    "LittleflowError",
    "Node",
    "Parser",
    "Registry",
    "Runner",
    "Start",
    "State",
    "TaskRun",
    "UnknownTasks",
    "compile_flow",
    "current",
    "run_workflow",
    "task",
    "__version__",
]

_HOMES = {
    "Compiler": ".compiler",
    "compile_flow": ".compiler",
    "Context": ".context",
    "Ending": ".context",
    "FlowContext": ".context",
    "Runner": ".context",
    "Engine": ".engine",
    "Start": ".engine",
    "Diagnostic": ".errors",
    "FlowError": ".errors",
    "LittleflowError": ".errors",
    "Flow": ".flow",
    "Node": ".flow",
    "FlowFailed": ".local",
    "UnknownTasks": ".local",
    "run_workflow": ".local",
    "Parser": ".parser",
    "State": ".state",
    "TaskRun": ".taskrun",
    "current": ".taskrun",
    "Fail": ".tasks",
    "Registry": ".tasks",
    "task": ".tasks",
}


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())
