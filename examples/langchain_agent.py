"""A LangGraph tool-calling agent, traced by adding one line.

    python examples/langchain_agent.py

Runs offline with LangChain's fake chat model playing a script. With ``OPENAI_API_KEY`` set
and ``langchain-openai`` installed it uses ``ChatOpenAI`` (``OPENAI_MODEL``, default
gpt-4o-mini); the OpenAI integration then records each request once, under the LangChain run.
"""

from __future__ import annotations

import os
from typing import Annotated, Any

from _support import print_trace, real_model_configured, start_tracing
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langgraph.graph import START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.prebuilt import ToolNode, tools_condition
from typing_extensions import TypedDict

import tracemill


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return {"Oslo": "light snow, -3°C", "Lisbon": "sunny, 19°C"}.get(city, "unknown")


class ScriptedChatModel(GenericFakeChatModel):
    """LangChain's fake chat model, with tools bound the way a real model binds them."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


def make_model() -> Any:
    if real_model_configured():
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"))
    return ScriptedChatModel(messages=iter([
        AIMessage(content="", tool_calls=[{"name": "get_weather", "args": {"city": "Oslo"}, "id": "call_oslo"},
                                          {"name": "get_weather", "args": {"city": "Lisbon"}, "id": "call_lisbon"}]),
        AIMessage(content="Oslo has light snow at -3°C; Lisbon is sunny at 19°C."),
    ]))


class State(TypedDict):
    messages: Annotated[list, add_messages]


def build_agent(model: Any) -> Any:
    tools = [get_weather]
    bound = model.bind_tools(tools)
    graph = StateGraph(State)
    graph.add_node("agent", lambda state: {"messages": [bound.invoke(state["messages"])]})
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition)
    graph.add_edge("tools", "agent")
    return graph.compile(name="weather-agent")


def main() -> None:
    start_tracing("langchain-example")
    tracemill.instrument()  # <- the one line: LangChain runs, tools and model calls become spans

    result = build_agent(make_model()).invoke({"messages": [("user", "Compare the weather in Oslo and Lisbon.")]})
    print(result["messages"][-1].content)
    print_trace()


if __name__ == "__main__":
    main()
