"""Load the functions' handler modules from `functions/` and call them as Lambda would.

Each load executes `functions/<name>/app.py` afresh (its settings are read at import, as at a cold
start), so a pipeline with new environment variables gets new handlers.
"""

import importlib.util
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


def load_handler_module(function: str) -> ModuleType:
    """Import `functions/<function>/app.py` as a new module (a cold start).

    Raises:
        FileNotFoundError: when run outside a checkout of the project.
    """
    path = FUNCTIONS_DIR / function / "app.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the local tools run from a checkout of the project")
    spec = importlib.util.spec_from_file_location(f"{function}_app_{uuid.uuid4().hex[:8]}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class LambdaContext:
    """The parts of Lambda's context object the handlers use; `timeout_s` is the function timeout in seconds."""

    function_name: str
    timeout_s: float
    memory_limit_in_mb: int = 512
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _deadline: float = field(init=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_s
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout."""
        return max(0, int((self._deadline - time.monotonic()) * 1000))
