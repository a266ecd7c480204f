"""Shared LLM-agent building blocks: chat backends and structured-output parsing.

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
from humanai_jax.agents.structured import (
    StructuredOutputError,
    chat_json,
    chat_xml,
    extract_fields,
    extract_json,
    parse_xml_tags,
    NULL,
    batch_structured,
    is_null_reply,
)
