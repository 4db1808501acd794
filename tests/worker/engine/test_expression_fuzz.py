"""hypothesis on the expression language: whatever the text, the parser answers with an
Expression or an ExpressionError (nothing else escapes, nothing hangs: its time is bounded
by ``max_expression_seconds``, which the parser enforces), and what it accepts is plain
arithmetic on the declared names: nothing else is ever evaluated."""

from __future__ import annotations

import ast
import builtins
import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimlab.worker.engine.expression import (
    CONSTANTS,
    FUNCTION_NAMES,
    Expression,
    ExpressionError,
    parse_expression,
)
from optimlab.worker.limits import Limits, use_limits

ALLOWED = frozenset({"x", "y"})
ARITHMETIC = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Constant,
              ast.Load, ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow, ast.USub, ast.UAdd)
FUZZ = settings(max_examples=200, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow])

# Pieces of Python that must never get through: names of builtins and modules, strings,
# containers, attribute and subscript access, calls of anything, lambdas, comprehensions,
# walrus, f-strings, comparisons, boolean and bitwise operators.
ATOMS = st.sampled_from([
    "x", "y", "1", "2.5", "0", "1e308", "pi", "e", "__import__", "os", "eval", "exec",
    "open", "getattr", "globals", "'s'", "b'x'", "None", "True", "...", "[]", "{}", "()",
    "x.__class__", "__builtins__", "torch", "math", "z", "9**9**9", "2**4096", "1e999"])
OPERATORS = st.sampled_from(["+", "-", "*", "/", "**", "//", "%", "@", "<<", ">>", "&", "|",
                             "^", "<", "==", " and ", " or ", " if x else ", " in ", ","])
FUNCTIONS = st.sampled_from([*sorted(FUNCTION_NAMES), "eval", "__import__", "getattr",
                             "open", "print", "x", "type", "vars", "exec", "compile"])


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(inner, OPERATORS, inner).map("".join),
        st.tuples(FUNCTIONS, inner).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(FUNCTIONS, inner, inner).map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        inner.map(lambda s: f"({s})"),
        inner.map(lambda s: f"-{s}"),
        inner.map(lambda s: f"({s}).real"),
        inner.map(lambda s: f"({s})[0]"),
        inner.map(lambda s: f"(lambda: {s})()"),
        inner.map(lambda s: f"[{s} for x in ()]"),
        inner.map(lambda s: f"(x := {s})"),
        inner.map(lambda s: f'f"{{{s}}}"'),
        inner.map(lambda s: f"{s}.__class__.__bases__[0].__subclasses__()"),
    )


PYTHONISH = st.recursive(ATOMS, _compound, max_leaves=15)


@contextlib.contextmanager
def forbidden_calls() -> Iterator[list[str]]:
    """Records every call of eval, exec and open, and of compile for anything but an AST
    (which is how ``ast.parse`` parses), made inside the block."""
    calls: list[str] = []
    real = {name: getattr(builtins, name) for name in ("eval", "exec", "open", "compile")}

    def spy(name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            flags = kwargs.get("flags", args[3] if len(args) > 3 else 0)
            if name != "compile" or not flags & ast.PyCF_ONLY_AST:
                calls.append(f"{name}{args[:1]!r}")
            return real[name](*args, **kwargs)

        return call

    for name in real:
        setattr(builtins, name, spy(name))
    try:
        yield calls
    finally:
        for name, function in real.items():
            setattr(builtins, name, function)


def _parse(source: str) -> Expression | None:
    try:
        return parse_expression(source, allowed_names=ALLOWED)
    except ExpressionError:
        return None


def _assert_arithmetic(source: str) -> None:
    """What the parser accepted is arithmetic on x and y, constants and allowed functions."""
    for node in ast.walk(ast.parse(source.strip(), mode="eval")):
        assert isinstance(node, ARITHMETIC), f"{type(node).__name__} accepted in {source!r}"
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            assert node.func.id in FUNCTION_NAMES, source
            assert len(node.args) == 1
            assert not node.keywords
        elif isinstance(node, ast.Name):
            assert node.id in ALLOWED | FUNCTION_NAMES | CONSTANTS.keys(), source
        elif isinstance(node, ast.Constant):
            assert type(node.value) in (int, float), source


def _evaluate(expression: Expression) -> None:
    env = {"x": torch.tensor([1.5, -0.5]), "y": torch.tensor(0.25)}
    try:
        value = expression.evaluate(env)
    except (RuntimeError, ZeroDivisionError, OverflowError, ExpressionError):
        return  # arithmetic that fails on these values fails as arithmetic does
    assert isinstance(value, torch.Tensor | int | float)


@settings(FUZZ, max_examples=100)
@given(source=PYTHONISH)
def test_only_arithmetic_is_accepted_and_nothing_else_runs(source: str) -> None:
    with forbidden_calls() as calls:
        expression = _parse(source)
        if expression is not None:
            _evaluate(expression)
    assert calls == []
    if expression is not None:
        _assert_arithmetic(source)
        assert expression.names <= ALLOWED


def test_the_spy_sees_a_forbidden_call() -> None:
    # What the fuzz test relies on: a call of eval inside the block is recorded.
    with forbidden_calls() as calls:
        builtins.eval("1")  # noqa: S307 - the forbidden call the spy must see
    assert calls == ["eval('1',)"]


@FUZZ
@given(source=st.text(max_size=400))
def test_any_text_is_an_expression_or_an_expression_error(source: str) -> None:
    expression = _parse(source)
    if expression is not None:
        _assert_arithmetic(source)


@FUZZ
@given(source=st.text(alphabet="()+-*/x1.e ,[]", max_size=3_000))
def test_nesting_and_length_never_escape_the_parser(source: str) -> None:
    # Deep parentheses, long chains: refused by the limits (or accepted), never a crash.
    _parse(source)


LARGE = "+".join(f"sin(x*{i}.5)**2" for i in range(400))  # ~6,000 nodes' worth of text


def test_the_parser_gives_up_after_its_configured_time() -> None:
    # The bound is the parser's own: a deadline checked at every node. A limit far below
    # what checking this expression takes must refuse it, whatever the machine's speed.
    limits = Limits(max_expression_seconds=1e-9, max_expression_nodes=100_000,
                    max_expression_depth=1_000)
    with use_limits(limits), pytest.raises(ExpressionError, match="OPTIMLAB_MAX_EXPRESSION_SE"):
        parse_expression(LARGE, allowed_names=ALLOWED)
    with use_limits(limits.model_copy(update={"max_expression_seconds": 60.0})):
        assert parse_expression(LARGE, allowed_names=ALLOWED).names == {"x"}


@FUZZ
@given(base=st.integers(min_value=-(10**6), max_value=10**6),
       exponent=st.integers(min_value=-50, max_value=10**6))
def test_integer_powers_of_a_step_are_bounded(base: int, exponent: int) -> None:
    # `step` is a Python int in schedule functions: base**exponent is computed only when its
    # result fits in max_exponent_bits; otherwise it is refused before Python tries.
    expression = parse_expression("b**n", allowed_names={"b", "n"})
    try:
        value = expression.evaluate_scalar({"b": base, "n": exponent})
    except (ExpressionError, ZeroDivisionError):
        return
    if isinstance(value, int):
        assert value.bit_length() <= Limits().max_exponent_bits + 1
