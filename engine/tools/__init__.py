"""Built-in tools `read`, `write`, `edit`, `grep`, `bash` and user tools: sandboxed, journaled.

DESIGN §8; Smithers' tool sandbox.

A `ToolContext` holds the sandbox (``root_dir``, ``allow_network``, ``max_output_bytes``,
``tool_timeout_ms``) and a journal callback that receives `ToolCallStarted` and
`ToolCallFinished` for every call. This room imports only `authoring` and the engine's
`errors`; agents and the executor build on it.
"""

from __future__ import annotations

from ._bash import BashArgs as BashArgs
from ._bash import CommandResult as CommandResult
from ._bash import NetworkMode as NetworkMode
from ._bash import network_mode as network_mode
from ._builtins import BASH as BASH
from ._builtins import BUILTIN_TOOLS as BUILTIN_TOOLS
from ._builtins import EDIT as EDIT
from ._builtins import GREP as GREP
from ._builtins import READ as READ
from ._builtins import WRITE as WRITE
from ._builtins import bash as bash
from ._builtins import edit as edit
from ._builtins import grep as grep
from ._builtins import read as read
from ._builtins import write as write
from ._context import DEFAULT_MAX_OUTPUT_BYTES as DEFAULT_MAX_OUTPUT_BYTES
from ._context import DEFAULT_TOOL_TIMEOUT_MS as DEFAULT_TOOL_TIMEOUT_MS
from ._context import ToolContext as ToolContext
from ._context import resolve_path as resolve_path
from ._errors import ToolArgumentsError as ToolArgumentsError
from ._errors import ToolCommandFailedError as ToolCommandFailedError
from ._errors import ToolContentTooLargeError as ToolContentTooLargeError
from ._errors import ToolError as ToolError
from ._errors import ToolFileTooLargeError as ToolFileTooLargeError
from ._errors import ToolGitRemoteDisabledError as ToolGitRemoteDisabledError
from ._errors import ToolGrepFailedError as ToolGrepFailedError
from ._errors import ToolNetworkDisabledError as ToolNetworkDisabledError
from ._errors import ToolPatchFailedError as ToolPatchFailedError
from ._errors import ToolPatchTooLargeError as ToolPatchTooLargeError
from ._errors import ToolPathEscapeError as ToolPathEscapeError
from ._errors import ToolPathInvalidError as ToolPathInvalidError
from ._files import EditArgs as EditArgs
from ._files import GrepArgs as GrepArgs
from ._files import ReadArgs as ReadArgs
from ._files import WriteArgs as WriteArgs
from ._patch import PatchError as PatchError
from ._patch import apply_unified_diff as apply_unified_diff
from ._registry import Tool as Tool
from ._registry import define_tool as define_tool

__all__ = (
    "BASH",
    "BUILTIN_TOOLS",
    "DEFAULT_MAX_OUTPUT_BYTES",
    "DEFAULT_TOOL_TIMEOUT_MS",
    "EDIT",
    "GREP",
    "READ",
    "WRITE",
    "BashArgs",
    "CommandResult",
    "EditArgs",
    "GrepArgs",
    "NetworkMode",
    "PatchError",
    "ReadArgs",
    "Tool",
    "ToolArgumentsError",
    "ToolCommandFailedError",
    "ToolContentTooLargeError",
    "ToolContext",
    "ToolError",
    "ToolFileTooLargeError",
    "ToolGitRemoteDisabledError",
    "ToolGrepFailedError",
    "ToolNetworkDisabledError",
    "ToolPatchFailedError",
    "ToolPatchTooLargeError",
    "ToolPathEscapeError",
    "ToolPathInvalidError",
    "WriteArgs",
    "apply_unified_diff",
    "bash",
    "define_tool",
    "edit",
    "grep",
    "network_mode",
    "read",
    "resolve_path",
    "write",
)
