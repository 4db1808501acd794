"""The safe math language: what it accepts computes what Python would; the rest is refused."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F

from optimlab.worker.engine.expression import ExpressionError, parse_expression

ROSENBROCK = "(1 - x)**2 + 100*(y - x**2)**2"


def tensors() -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(3)
    return {
        "x": (torch.rand(5, generator=generator) * 4 - 2).requires_grad_(),
        "y": (torch.rand(5, generator=generator) * 4 - 2).requires_grad_(),
    }


def bit_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same dtype, shape and values; NaN where the other has NaN."""
    return (a.dtype == b.dtype and a.shape == b.shape
            and torch.allclose(a, b, rtol=0, atol=0, equal_nan=True))


# --------------------------------------------------------------------------- accepted


@pytest.mark.parametrize(
    ("source", "python"),
    [
        (ROSENBROCK, lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2),
        ("x**2", lambda x, y: x**2),
        ("x**2.0", lambda x, y: x**2.0),
        ("2**x", lambda x, y: 2**x),
        ("x**y", lambda x, y: x**y),
        ("-x**2", lambda x, y: -(x**2)),
        ("(-x)**2", lambda x, y: (-x) ** 2),
        ("+x - -y", lambda x, y: +x - -y),
        ("x / y * 3 - 1 / x", lambda x, y: x / y * 3 - 1 / x),
        ("x - y - 1 + 2", lambda x, y: x - y - 1 + 2),
        ("x * (y + 0.5) * 1e-3", lambda x, y: x * (y + 0.5) * 1e-3),
        ("2*pi*x + e*y", lambda x, y: 2 * math.pi * x + math.e * y),
        ("x**-1", lambda x, y: x**-1),
        ("2**-2 * x", lambda x, y: 2**-2 * x),
        ("10**3 * x", lambda x, y: 10**3 * x),
        ("sum((x - y)**2) / 5", lambda x, y: torch.sum((x - y) ** 2) / 5),
        ("mean(abs(x)) + sqrt(abs(y))", lambda x, y: torch.mean(torch.abs(x))
         + torch.sqrt(torch.abs(y))),
        ("log(1 + exp(x))", lambda x, y: torch.log(1 + torch.exp(x))),
        ("tanh(sigmoid(relu(x)) + softplus(y))",
         lambda x, y: torch.tanh(torch.sigmoid(torch.relu(x)) + F.softplus(y))),
        ("sin(x)*cos(y) - tan(x/4)", lambda x, y: torch.sin(x) * torch.cos(y) - torch.tan(x / 4)),
        ("  x +\ty  ", lambda x, y: x + y),
    ],
)
def test_tensor_results_are_bit_identical_to_python(source: str, python: object) -> None:
    env = tensors()
    expression = parse_expression(source, allowed_names=["x", "y"])
    got = expression.evaluate(env)
    expected = python(env["x"], env["y"])  # type: ignore[operator]
    assert bit_equal(got, expected)
    # ...and so are the gradients, which is what the optimizers see.
    # allow_unused: a variable the expression does not use has no gradient (None)
    grads: tuple[torch.Tensor | None, ...] = torch.autograd.grad(
        got.sum(), [env["x"], env["y"]], allow_unused=True)
    expected_grads: tuple[torch.Tensor | None, ...] = torch.autograd.grad(
        expected.sum(), [env["x"], env["y"]], allow_unused=True)
    for a, b in zip(grads, expected_grads, strict=True):
        assert (a is None and b is None) or (
            a is not None and b is not None and bit_equal(a, b))


@pytest.mark.parametrize(
    ("name", "function"),
    [("sin", torch.sin), ("cos", torch.cos), ("tan", torch.tan), ("exp", torch.exp),
     ("log", torch.log), ("sqrt", torch.sqrt), ("abs", torch.abs), ("tanh", torch.tanh),
     ("sigmoid", torch.sigmoid), ("relu", torch.relu), ("softplus", F.softplus),
     ("sum", torch.sum), ("mean", torch.mean)],
)
def test_each_function_is_the_torch_function(name: str, function: object) -> None:
    x = torch.linspace(-3.0, 3.0, 13)
    x_positive = torch.linspace(0.25, 4.0, 16)
    for value in (x, x_positive):
        got = parse_expression(f"{name}(x)", allowed_names=["x"]).evaluate({"x": value})
        assert bit_equal(got, function(value))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("name", "function"),
    [("sin", math.sin), ("cos", math.cos), ("tan", math.tan), ("exp", math.exp),
     ("log", math.log), ("sqrt", math.sqrt), ("abs", abs), ("tanh", math.tanh),
     ("sigmoid", lambda v: 1 / (1 + math.exp(-v))), ("relu", lambda v: max(v, 0.0)),
     ("softplus", lambda v: math.log1p(math.exp(v))), ("sum", lambda v: v),
     ("mean", lambda v: v)],
)
def test_scalar_backend_uses_python_math(name: str, function: object) -> None:
    expression = parse_expression(f"{name}(step / 7)", allowed_names=["step"])
    for step in (1, 3, 7, 20):
        got = expression.evaluate_scalar({"step": step})
        assert isinstance(got, float | int)
        assert math.isclose(got, function(step / 7), rel_tol=1e-15)  # type: ignore[operator]
        # The tensor backend (float32) agrees to float32 precision.
        as_tensor = parse_expression(f"{name}(step / 7)", allowed_names=["step"]).evaluate(
            {"step": torch.tensor(float(step), dtype=torch.float64)})
        assert math.isclose(float(as_tensor), got, rel_tol=1e-6)


@pytest.mark.parametrize("value", [-1000.0, -750.0, -40.0, -1.0, 0.0, 1.0, 40.0, 750.0, 1000.0])
@pytest.mark.parametrize("name", ["sigmoid", "softplus"])
def test_scalar_sigmoid_and_softplus_do_not_overflow(name: str, value: float) -> None:
    # torch's versions are finite everywhere; the scalar ones must agree, e.g. for a
    # schedule "sigmoid(10 - step)" run for thousands of steps.
    got = parse_expression(f"{name}(v)", allowed_names=["v"]).evaluate_scalar({"v": value})
    expected = getattr(F if name == "softplus" else torch, name)(
        torch.tensor(value, dtype=torch.float64)).item()
    assert math.isclose(got, expected, rel_tol=1e-12, abs_tol=1e-300)


def test_scalar_backend_matches_python_for_schedule_functions() -> None:
    cases: dict[str, Callable[[int], float]] = {
        "0.95**step": lambda step: 0.95**step,
        "1 - step/100": lambda step: 1 - step / 100,
        "0.5*(1 + cos(pi*step/40))": lambda step: 0.5 * (1 + math.cos(math.pi * step / 40)),
        "2**-step + e**-step": lambda step: 2**-step + math.e**-step,
        "step**2 / (1 + step**3)": lambda step: step**2 / (1 + step**3),
    }
    for source, python in cases.items():
        expression = parse_expression(source, allowed_names=["step"])
        for step in range(0, 200, 7):
            assert expression.evaluate_scalar({"step": step}) == python(step), (source, step)


def test_constants() -> None:
    assert parse_expression("pi", allowed_names=[]).evaluate_scalar({}) == math.pi
    assert parse_expression("e", allowed_names=[]).evaluate_scalar({}) == math.e
    assert parse_expression("2*pi", allowed_names=[]).evaluate({}) == 2 * math.pi


def test_names_are_the_ones_used() -> None:
    expression = parse_expression("w*u + b + pi", allowed_names=["w", "u", "b", "unused"])
    assert expression.names == {"w", "u", "b"}


def test_integer_powers_of_variables_at_a_reasonable_size_still_work() -> None:
    expression = parse_expression("step**step", allowed_names=["step"])
    assert expression.evaluate_scalar({"step": 20}) == 20**20
    assert parse_expression("2**2000 / 2**1999", allowed_names=[]).evaluate_scalar({}) == 2.0


# --------------------------------------------------------------------------- refused


@pytest.mark.parametrize(
    ("source", "part"),
    [
        ("x.data", "x.data"),
        ("x.__class__", "x.__class__"),
        ("x.__class__.__bases__", "x.__class__.__bases__"),
        ("x + z", "z"),
        ("__builtins__", "__builtins__"),
        ("open('f')", "open"),
        ("__import__('os')", "__import__"),
        ("eval('1')", "eval"),
        ("exec('1')", "exec"),
        ("getattr(x, 'data')", "getattr"),
        ("x.sin()", "x.sin()"),
        ("torch.sin(x)", "torch.sin(x)"),
        ("sin(x)(y)", "sin(x)(y)"),
        ("x[0]", "x[0]"),
        ("x[0:2]", "x[0:2]"),
        ("lambda: 1", "lambda: 1"),
        ("(lambda: x)()", "(lambda: x)()"),
        ("'abc'", "'abc'"),
        ("x + 'a'", "'a'"),
        ("b'x'", "b'x'"),
        ("x < 1", "x < 1"),
        ("x == y", "x == y"),
        ("x and y", "x and y"),
        ("not x", "not x"),
        ("x if y else 1", "x if y else 1"),
        ("9**9**9", "9**9**9"),
        ("10**10**10", "10**10**10"),
        ("x * 2**100000", "2**100000"),
        ("x + " + "9" * 2000, "9" * 2000),
        ("x * 1e999", "1e999"),
        ("x * 10.0**400", "10.0**400"),
        ("x + 1/0", "1/0"),
        ("x + (-8)**0.5", "(-8)**0.5"),
        ("x + 1j", "1j"),
        ("sin(x=1)", "sin(x=1)"),
        ("sin(x, y)", "sin(x, y)"),
        ("sin()", "sin()"),
        ("sin(*x)", "sin(*x)"),
        ("sum(**x)", "sum(**x)"),
        ("f'{x}'", "f'{x}'"),
        ("(y := x)", "y := x"),
        ("True", "True"),
        ("x + False", "False"),
        ("None", "None"),
        ("x % 2", "x % 2"),
        ("x // 2", "x // 2"),
        ("x @ y", "x @ y"),
        ("x ^ y", "x ^ y"),
        ("x << 2", "x << 2"),
        ("~x", "~x"),
        ("[x, y]", "[x, y]"),
        ("(x, y)", "(x, y)"),
        ("{x}", "{x}"),
        ("{'a': x}", "{'a': x}"),
        ("[v for v in x]", "[v for v in x]"),
        ("sin + x", "sin"),
        ("...", "..."),
    ],
)
def test_refused_with_a_message_naming_the_offending_part(source: str, part: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        parse_expression(source, allowed_names=["x", "y"])
    assert caught.value.part == part
    assert repr(part) in str(caught.value)


def test_undeclared_names_are_listed_with_the_declared_ones() -> None:
    with pytest.raises(ExpressionError, match=r"declared: b, w.*'u'"):
        parse_expression("w*u + b", allowed_names=["w", "b"])


def test_functions_and_constants_are_not_variables() -> None:
    for source in ("sin", "pi(x)", "e(x)"):
        with pytest.raises(ExpressionError):
            parse_expression(source, allowed_names=["x"])


@pytest.mark.parametrize(
    "source",
    [
        "",
        "x +",
        "x = 1",
        "import os",
        "x; y",
        "x\ny",
        "(" * 1000 + "x" + ")" * 1000,
        "x+" * 100_000 + "x",
        "-" * 5000 + "x",
        "+".join(["sin(x)"] * 3000),
        "sin(" * 150 + "x" + ")" * 150,
        "9" * 5000,
    ],
    ids=["empty", "incomplete", "assignment", "import", "two-statements", "two-lines",
         "nested-parentheses", "long-sum", "many-unary", "many-calls", "nested-calls",
         "5000-digits"],
)
@pytest.mark.timeout(10)
def test_malformed_huge_or_deeply_nested_sources_are_refused(source: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ExpressionError):
        parse_expression(source, allowed_names=["x", "y"])
    assert time.perf_counter() - started < 5


def test_just_below_the_limits_is_accepted() -> None:
    source = "+".join(["x"] * 90)
    expression = parse_expression(source, allowed_names=["x"])
    assert expression.evaluate({"x": torch.tensor(1.0)}).item() == 90.0
    nested = "sin(" * 40 + "x" + ")" * 40
    assert parse_expression(nested, allowed_names=["x"]).evaluate_scalar({"x": 0.0}) == 0.0


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("source", "step"),
    [("step**step**step", 10), ("step**step", 10**6), ("2**step", 10**7),
     ("(step**200)**200", 1000), ("(-step)**step", 5000), ("10**(step*step)", 1000)],
)
def test_runtime_integer_blowups_raise_instead_of_hanging(source: str, step: int) -> None:
    expression = parse_expression(source, allowed_names=["step"])
    started = time.perf_counter()
    with pytest.raises(ExpressionError, match="too large"):
        expression.evaluate_scalar({"step": step})
    assert time.perf_counter() - started < 5


@pytest.mark.timeout(10)
@pytest.mark.parametrize("source", ["1.5**step", "exp(step)", "2.0**step"])
def test_runtime_float_overflow_fails_fast(source: str) -> None:
    expression = parse_expression(source, allowed_names=["step"])
    with pytest.raises((ExpressionError, OverflowError)):
        expression.evaluate_scalar({"step": 10**6})


def test_tensor_powers_of_large_exponents_do_not_hang() -> None:
    # On tensors a big exponent is just a float operation (inf), not a huge integer.
    got = parse_expression("x**(9**9)", allowed_names=["x"]).evaluate({"x": torch.tensor(2.0)})
    assert math.isinf(got.item())


def test_the_error_is_a_value_error() -> None:
    # Callers that catch ValueError (spec validation) see it.
    with pytest.raises(ValueError, match="attribute"):
        parse_expression("x.data", allowed_names=["x"])
