"""A LlamaIndex FunctionAgent, traced by adding one line.

    python examples/llama_index_agent.py

Runs offline with LlamaIndex's mock function-calling LLM playing a script. With
``OPENAI_API_KEY`` set and ``llama-index-llms-openai`` installed it uses that model
(``OPENAI_MODEL``, default gpt-4o-mini).
"""

from __future__ import annotations

import asyncio
import os
import warnings
from typing import Any

from _support import print_trace, real_model_configured, start_tracing
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.base.llms.types import ChatMessage, ToolCallBlock
from llama_index.core.llms.mock import MockFunctionCallingLLM
from llama_index.core.tools import FunctionTool
from pydantic.warnings import PydanticDeprecatedSince20, PydanticDeprecatedSince211

import tracemill

# LlamaIndex workflows read their own pydantic fields, which pydantic reports as deprecated.
warnings.filterwarnings("ignore", category=PydanticDeprecatedSince20)
warnings.filterwarnings("ignore", category=PydanticDeprecatedSince211)


def get_weather(city: str) -> str:
    """The current weather in a city."""
    return {"Oslo": "light snow, -3°C", "Lisbon": "sunny, 19°C"}.get(city, "unknown")


def make_llm() -> Any:
    if real_model_configured():
        try:
            from llama_index.llms.openai import OpenAI
        except ImportError:
            print("llama-index-llms-openai is not installed; using the scripted model")
        else:
            return OpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    turns = iter([
        ChatMessage(role="assistant", blocks=[
            ToolCallBlock(tool_call_id="call_oslo", tool_name="get_weather", tool_kwargs={"city": "Oslo"}),
            ToolCallBlock(tool_call_id="call_lisbon", tool_name="get_weather", tool_kwargs={"city": "Lisbon"}),
        ]),
        ChatMessage(role="assistant", content="Oslo has light snow at -3°C; Lisbon is sunny at 19°C."),
    ])
    return MockFunctionCallingLLM(response_generator=lambda messages, **kwargs: next(turns))


async def main() -> None:
    start_tracing("llama-index-example")
    tracemill.instrument()  # <- the one line: LLM calls, tools and agent steps become spans

    agent = FunctionAgent(name="weather-agent", tools=[FunctionTool.from_defaults(get_weather)], llm=make_llm(),
                          system_prompt="Answer with the weather tool.")
    print(await agent.run(user_msg="Compare the weather in Oslo and Lisbon."))
    print_trace()


if __name__ == "__main__":
    asyncio.run(main())
