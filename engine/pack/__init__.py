"""The workflow pack: workflows shipped with smithers, and the project's own by name.

The pack's files live in ``workflows/`` beside this module (package data):
``review.py`` (review a diff), ``research.py`` (answer a question), ``implement.py``
(implement a ticket with a review loop) and the system workflow ``post_failure.py``
(the post-failure autopsy). ``smithers init`` copies them into the project's
``.smithers/workflows/`` (`init_pack`), where they can be edited; ``smithers workflow
list|path|run NAME`` find them by name (`list_workflows`, `find_workflow`), the
project's copy first. A name is the file's stem with ``_`` read as ``-``;
`SYSTEM_WORKFLOWS` are hidden from the listing unless asked for.
"""

from __future__ import annotations

from ._init import InitResult as InitResult
from ._init import init_pack as init_pack
from ._listing import PACK_WORKFLOWS_DIR as PACK_WORKFLOWS_DIR
from ._listing import PROJECT_WORKFLOWS_DIR as PROJECT_WORKFLOWS_DIR
from ._listing import SYSTEM_WORKFLOWS as SYSTEM_WORKFLOWS
from ._listing import PackWorkflow as PackWorkflow
from ._listing import file_name_for as file_name_for
from ._listing import find_workflow as find_workflow
from ._listing import list_workflows as list_workflows
from ._listing import pack_workflows as pack_workflows
from ._listing import project_workflows_dir as project_workflows_dir
from ._listing import validate_workflow_name as validate_workflow_name
from ._listing import workflow_name_for as workflow_name_for

__all__ = (
    "PACK_WORKFLOWS_DIR",
    "PROJECT_WORKFLOWS_DIR",
    "SYSTEM_WORKFLOWS",
    "InitResult",
    "PackWorkflow",
    "file_name_for",
    "find_workflow",
    "init_pack",
    "list_workflows",
    "pack_workflows",
    "project_workflows_dir",
    "validate_workflow_name",
    "workflow_name_for",
)
