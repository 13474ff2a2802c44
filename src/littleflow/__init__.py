"""littleflow: a little workflow language and engine."""

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
    "Compiler", "Context", "Diagnostic", "Ending", "Engine", "Fail", "Flow", "FlowContext", "FlowError",
    "FlowFailed", "LittleflowError", "Node", "Parser", "Registry", "Runner", "Start", "State", "TaskRun",
    "UnknownTasks", "compile_flow", "current", "run_workflow", "task", "__version__",
]
