"""Fixtures of the agent tests: a scripted model-API server (``stub_llm.py``) per test.

Test modules run with ``--import-mode=importlib``, so this file loads ``stub_llm.py`` by
path and registers it as the module ``stub_llm``: a test module in this folder may then
``from stub_llm import StubLLM, fingerprint, read_log`` (this conftest is imported before
the modules beside it). ``STUB_LLM_SCRIPT`` is the file to run as a process.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

STUB_LLM_SCRIPT = Path(__file__).with_name("stub_llm.py")


def _load_stub_llm() -> object:
    if "stub_llm" in sys.modules:
        return sys.modules["stub_llm"]
    spec = importlib.util.spec_from_file_location("stub_llm", STUB_LLM_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["stub_llm"] = module  # before exec: dataclasses and pickling look it up
    spec.loader.exec_module(module)
    return module


_load_stub_llm()

from stub_llm import StubLLM  # noqa: E402


@pytest.fixture
def stub_llm() -> Iterator[StubLLM]:
    """A running `StubLLM` on 127.0.0.1 with an empty script; stopped after the test.

    Give it steps with ``stub_llm.add(...)``; point providers at
    ``stub_llm.openai_base_url`` / ``stub_llm.anthropic_base_url``; read what was sent in
    ``stub_llm.requests``.
    """
    stub = StubLLM().start()
    try:
        yield stub
    finally:
        stub.stop()


@pytest.fixture
def stub_llm_script() -> Path:
    """Path of ``stub_llm.py``, to run the stub as its own process."""
    return STUB_LLM_SCRIPT
