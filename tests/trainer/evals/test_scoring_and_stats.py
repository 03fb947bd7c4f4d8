"""The scoring rules, the generation parser and the paired tests, on hand-made inputs."""

from __future__ import annotations

import pytest

from tracemill.errors import ConfigError
from tracemill.trainer.evals.compare import compare_results
from tracemill.trainer.evals.models import parse_generation
from tracemill.trainer.evals.scoring import as_verdict, load_callable, normalise, score_decision
from tracemill.trainer.evals.stats import mcnemar_exact, paired_bootstrap

CALL = {"name": "book_flight", "arguments": {"flight_id": "F1", "passenger": "Ada"}}


def test_tool_calls_match_by_name_and_json_arguments_in_any_order():
    expected = {"output": None, "tool_calls": [CALL, {"name": "get_weather", "arguments": {"city": "Oslo"}}]}
    same = {"output": "sure", "tool_calls": [{"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                                             {"name": "book_flight", "arguments": {"passenger": "Ada",
                                                                                  "flight_id": "F1"}}]}
    assert score_decision(expected, same) == (True, "same tool calls")
    passed, why = score_decision(expected, {"output": None, "tool_calls": [CALL]})
    assert not passed and why.startswith("tool calls differ")


def test_answers_match_after_normalisation_and_a_tool_call_is_not_an_answer():
    expected = {"output": "Booked  F1 for Ada.", "tool_calls": []}
    assert score_decision(expected, {"output": "booked f1 for ada", "tool_calls": []})[0]
    assert not score_decision(expected, {"output": "Booked F2 for Ada.", "tool_calls": []})[0]
    assert not score_decision(expected, {"output": "Booked F1 for Ada.", "tool_calls": [CALL]})[0]
    assert normalise("  Ｈello\n World! ") == "hello world"


def test_user_scorer_values_and_loading_errors():
    assert as_verdict(True) == (True, "scorer") and as_verdict(0.4)[0] is False and as_verdict((1, "ok")) == (
        True, "ok")
    with pytest.raises(ConfigError, match="must return a bool"):
        as_verdict("yes")
    with pytest.raises(ConfigError, match="must be module:function"):
        load_callable("nocolon", option="--scorer")
    with pytest.raises(ConfigError, match="cannot import module 'no_such_module_x'"):
        load_callable("no_such_module_x:f", option="--scorer")


def test_generation_parser_reads_both_tool_call_conventions():
    tiny = parse_generation('<|tool_call|>{"name": "book_flight", "arguments": {"flight_id": "F1"}}', ("<|end|>",))
    assert tiny == {"output": None, "tool_calls": [{"name": "book_flight", "arguments": {"flight_id": "F1"}}]}
    hermes = parse_generation('Let me check.<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}'
                              "</tool_call>")
    assert hermes["output"] == "Let me check." and hermes["tool_calls"][0]["name"] == "get_weather"
    assert parse_generation("<|tool_call|>{not json")["tool_calls"] == []


def test_exact_mcnemar_matches_the_binomial_reference():
    assert mcnemar_exact(0, 20) == pytest.approx(1.9073486328125e-06)
    assert mcnemar_exact(0, 0) == 1.0 and mcnemar_exact(5, 5) == 1.0
    assert mcnemar_exact(0, 5) > 0.05 > mcnemar_exact(0, 6)  # six regressions of six discordant cases are enough


def test_paired_bootstrap_sees_a_consistent_drop_and_not_noise():
    drop, p_drop = paired_bootstrap([1.0] * 30, [0.6] * 30)
    assert drop == pytest.approx(-0.4) and p_drop < 0.001
    noise, p_noise = paired_bootstrap([1.0, 0.0] * 15, [0.0, 1.0] * 15)
    assert noise == 0.0 and p_noise > 0.5


def _results(passes: list[int], k: int = 1) -> list[dict]:
    return [{"case_id": f"c{i}", "attempt": a, "passed": bool(p), "trace_id": f"t{i}{a}", "output": None,
             "detail": {}} for i, p in enumerate(passes) for a in range(k)]


def test_verdicts_on_paired_results():
    everything, half = [1] * 20, [1, 0] * 10
    assert compare_results(_results(everything), _results(half))["verdict"] == "regression"
    assert compare_results(_results(half), _results(everything))["verdict"] == "improvement"
    assert compare_results(_results(half), _results(half))["verdict"] == "no significant change"
    small_drop = compare_results(_results(everything), _results([0] * 2 + [1] * 18))
    assert small_drop["verdict"] == "no significant change" and small_drop["regressed"] == ["c0", "c1"]
    gated = compare_results(_results(everything), _results([0] + [1] * 19), must_pass=["c0"])
    assert gated["verdict"] == "regression" and gated["must_pass_failed"] == ["c0"]
    with pytest.raises(ConfigError, match="share no case"):
        compare_results(_results([1]), [{**_results([1])[0], "case_id": "other"}])
