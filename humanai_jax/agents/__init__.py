"""Shared LLM-agent building blocks: chat backends, structured-output parsing, the resumable JSONL
stage runner (`stages.py`) and the prompt-template loader (`prompts.py`).

Method folders (HumanLLM, MotiveBench, ...) import this package; it never imports them.
See docs/agents.md.
"""

from humanai_jax.agents.backend import (
    BackendError,
    ChatBackend,
    ChatResult,
    GenConfig,
    Message,
    OpenAICompatBackend,
    RecordingBackend,
    ReplayBackend,
    ScriptedBackend,
    apply_stop,
)
from humanai_jax.agents.prompts import PromptLibrary
from humanai_jax.agents.stages import StageReport, failure_reason, kept, run_stage
from humanai_jax.agents.structured import (
    NULL,
    StructuredOutputError,
    batch_structured,
    chat_json,
    chat_xml,
    extract_fields,
    extract_json,
    is_null_reply,
    parse_xml_tags,
)
