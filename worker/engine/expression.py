"""A small, safe math language for models, objectives and schedule functions.

Expressions are parsed with :mod:`ast` and checked against a whitelist, then
compiled into nested closures that apply Python's own operators in Python's
own evaluation order. ``x**2`` therefore runs exactly ``x.__pow__(2)``, as the
same expression written in a training script would: results are bit-identical.
Nothing is ever passed to ``eval``.

Two backends evaluate the same syntax: tensors (models and objectives) and
Python floats (schedule functions such as ``lr_lambda``).
"""

from __future__ import annotations

import ast
import functools
import math
import operator
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from optimlab.worker.limits import Limits, active_limits, setting_name

Value = Any  # a tensor or a Python number
Env = Mapping[str, Value]
Compiled = Callable[[Env], Value]

BINARY_OPERATORS: dict[type[ast.operator], Callable[[Value, Value], Value]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
}
UNARY_OPERATORS: dict[type[ast.unaryop], Callable[[Value], Value]] = {
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
CONSTANTS: dict[str, float] = {"pi": math.pi, "e": math.e}


def _as_tensor(function: Callable[..., torch.Tensor]) -> Callable[[Value], Value]:
    def apply(value: Value) -> Value:
        if not isinstance(value, torch.Tensor):
            value = torch.tensor(value, dtype=torch.float32)
        return function(value)

    return apply


_TORCH_FUNCTIONS: dict[str, Callable[..., torch.Tensor]] = {
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "exp": torch.exp,
    "log": torch.log,
    "sqrt": torch.sqrt,
    "abs": torch.abs,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "relu": torch.relu,
    "softplus": F.softplus,
    "sum": torch.sum,
    "mean": torch.mean,
}
TENSOR_FUNCTIONS: dict[str, Callable[[Value], Value]] = {
    name: _as_tensor(function) for name, function in _TORCH_FUNCTIONS.items()
}

SCALAR_FUNCTIONS: dict[str, Callable[[Value], Value]] = {
    "sin": math.sin,
    "cos": math.cos,
    "tan": math.tan,
    "exp": math.exp,
    "log": math.log,
    "sqrt": math.sqrt,
    "abs": abs,
    "tanh": math.tanh,
    # sigmoid and softplus in forms whose exp() cannot overflow, as torch's cannot.
    "sigmoid": lambda v: 1.0 / (1.0 + math.exp(-v)) if v >= 0 else
    math.exp(v) / (1.0 + math.exp(v)),
    "relu": lambda v: max(v, 0),
    "softplus": lambda v: math.log1p(math.exp(v)) if v <= 0 else v + math.log1p(math.exp(-v)),
    "sum": lambda v: v,
    "mean": lambda v: v,
}
FUNCTION_NAMES = frozenset(TENSOR_FUNCTIONS)
RESERVED_NAMES = FUNCTION_NAMES | frozenset(CONSTANTS)


class ExpressionError(ValueError):
    """A rejected expression; ``part`` is the offending piece of source."""

    def __init__(self, reason: str, part: str | None = None) -> None:
        self.reason = reason
        self.part = part
        super().__init__(f"{reason}: {part!r}" if part else reason)


@dataclass(frozen=True)
class Expression:
    source: str
    names: frozenset[str]
    _tensor: Compiled
    _scalar: Compiled

    def evaluate(self, env: Env) -> Value:
        """Evaluate on tensors (and Python numbers mixed in, as Python would)."""
        return self._tensor(env)

    def evaluate_scalar(self, env: Env) -> Value:
        """Evaluate on Python numbers, with :mod:`math` functions."""
        return self._scalar(env)


def parse_expression(source: str, *, allowed_names: Collection[str]) -> Expression:
    """Parse and check ``source``; names must come from ``allowed_names`` or be constants.

    The active limits (``worker.limits``) bound its length, nodes, depth, the integers it
    may make, and the time the parser spends on it."""
    # An Expression is immutable: every job of a sweep shares the one parsed for the first.
    return _parse(source, frozenset(allowed_names), active_limits())


@functools.lru_cache(maxsize=256)
def _parse(source: str, allowed_names: frozenset[str], limits: Limits) -> Expression:
    if len(source) > limits.max_expression_chars:
        raise ExpressionError(f"expression longer than {limits.max_expression_chars} "
                              f"characters ({setting_name('max_expression_chars')})")
    deadline = time.monotonic() + limits.max_expression_seconds
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except SyntaxError as exc:
        raise ExpressionError(f"invalid syntax ({exc.msg})", source) from None
    except (RecursionError, MemoryError, ValueError):
        raise ExpressionError("expression too large or deeply nested") from None
    checker = _Checker(source, allowed_names, limits, deadline)
    checker.visit_tree(tree.body)
    return Expression(
        source=source,
        names=frozenset(checker.names),
        _tensor=_compile(tree.body, TENSOR_FUNCTIONS, limits.max_exponent_bits),
        _scalar=_compile(tree.body, SCALAR_FUNCTIONS, limits.max_exponent_bits),
    )


class _Checker:
    def __init__(self, source: str, allowed: frozenset[str], limits: Limits,
                 deadline: float) -> None:
        self.source = source
        self.allowed = allowed
        self.limits = limits
        self.deadline = deadline
        self.names: set[str] = set()
        self.nodes = 0

    def in_time(self) -> None:
        """Every node is checked against the deadline: whatever the input, the parser
        gives up after ``max_expression_seconds`` (``ast.parse`` itself is bounded by the
        length limit)."""
        if time.monotonic() > self.deadline:
            raise ExpressionError(
                f"expression took over {self.limits.max_expression_seconds} s to check "
                f"({setting_name('max_expression_seconds')})")

    def part(self, node: ast.AST) -> str:
        return ast.get_source_segment(self.source.strip(), node) or type(node).__name__

    def visit_tree(self, root: ast.expr) -> None:
        # Iterative depth check first, so the recursive passes below cannot overflow.
        stack: list[tuple[ast.AST, int]] = [(root, 1)]
        most_nodes, deepest = self.limits.max_expression_nodes, self.limits.max_expression_depth
        while stack:
            node, depth = stack.pop()
            self.nodes += 1
            if self.nodes > most_nodes:
                raise ExpressionError(f"expression too large (over {most_nodes} nodes: "
                                      f"{setting_name('max_expression_nodes')})")
            if depth > deepest:
                raise ExpressionError(f"expression nested too deeply (over {deepest} levels: "
                                      f"{setting_name('max_expression_depth')})")
            self.in_time()
            stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
        self.visit(root)

    def visit(self, node: ast.expr) -> int | float | None:
        """Check ``node``; return its value when it is a constant number (to bound sizes)."""
        self.in_time()
        if isinstance(node, ast.Constant):
            return self.visit_constant(node)
        if isinstance(node, ast.Name):
            return self.visit_name(node)
        if isinstance(node, ast.BinOp):
            return self.visit_binop(node)
        if isinstance(node, ast.UnaryOp):
            if type(node.op) not in UNARY_OPERATORS:
                raise ExpressionError("operator not allowed", self.part(node))
            value = self.visit(node.operand)
            return None if value is None else UNARY_OPERATORS[type(node.op)](value)
        if isinstance(node, ast.Call):
            self.visit_call(node)
            return None
        raise ExpressionError(f"{_describe(node)} not allowed", self.part(node))

    def visit_constant(self, node: ast.Constant) -> int | float:
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ExpressionError("only numbers are allowed as constants", self.part(node))
        # Literals are bounded like folded constants: 1e999 is inf, long digit strings overflow.
        if (isinstance(value, int) and value.bit_length() > self.limits.max_exponent_bits) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise ExpressionError(_too_large(self.limits.max_exponent_bits), self.part(node))
        return value

    def visit_name(self, node: ast.Name) -> float | None:
        if node.id in CONSTANTS:
            return CONSTANTS[node.id]
        if node.id in FUNCTION_NAMES:
            raise ExpressionError("function used without a call", node.id)
        if node.id not in self.allowed:
            known = ", ".join(sorted(self.allowed)) or "none"
            raise ExpressionError(f"unknown name (declared: {known})", node.id)
        self.names.add(node.id)
        return None

    def visit_binop(self, node: ast.BinOp) -> int | float | None:
        if type(node.op) not in BINARY_OPERATORS:
            raise ExpressionError("operator not allowed (use + - * / **)", self.part(node))
        left, right = self.visit(node.left), self.visit(node.right)
        if left is None or right is None:
            return None
        return _fold(node.op, left, right, self.part(node), self.limits.max_exponent_bits)

    def visit_call(self, node: ast.Call) -> None:
        if not isinstance(node.func, ast.Name):
            raise ExpressionError("only calls of plain function names are allowed",
                                  self.part(node))
        if node.func.id not in FUNCTION_NAMES:
            allowed = ", ".join(sorted(FUNCTION_NAMES))
            raise ExpressionError(f"function not allowed (allowed: {allowed})", node.func.id)
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise ExpressionError("functions take exactly one argument", self.part(node))
        self.visit(node.args[0])


def _fold(op: ast.operator, left: int | float, right: int | float, part: str,
          max_bits: int) -> int | float:
    """Compute a constant sub-expression, refusing the ones that would not fit in memory."""
    if isinstance(op, ast.Pow) and isinstance(left, int) and isinstance(right, int):
        bits = abs(right) * max(abs(left), 1).bit_length()
        if right > 0 and abs(left) > 1 and bits > max_bits:
            raise ExpressionError(_too_large(max_bits), part)
    try:
        value = BINARY_OPERATORS[type(op)](left, right)
    except (OverflowError, ZeroDivisionError) as exc:
        raise ExpressionError(f"constant arithmetic fails ({exc})", part) from None
    if isinstance(value, complex):
        raise ExpressionError("complex result", part)
    if isinstance(value, int) and value.bit_length() > max_bits:
        raise ExpressionError(_too_large(max_bits), part)
    return value  # type: ignore[no-any-return]


def _too_large(max_bits: int) -> str:
    return f"number too large (over {max_bits} bits: {setting_name('max_exponent_bits')})"


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access",
        ast.Subscript: "subscripts",
        ast.Lambda: "lambdas",
        ast.Compare: "comparisons",
        ast.BoolOp: "boolean operators",
        ast.IfExp: "conditional expressions",
    }
    return kinds.get(type(node), type(node).__name__)


def _compile(node: ast.expr, functions: Mapping[str, Callable[[Value], Value]],
             max_bits: int) -> Compiled:
    if isinstance(node, ast.Constant):
        constant = node.value
        return lambda env: constant
    if isinstance(node, ast.Name):
        name = node.id
        if name in CONSTANTS:
            value = CONSTANTS[name]
            return lambda env: value
        return lambda env: env[name]
    if isinstance(node, ast.BinOp):
        binary = BINARY_OPERATORS[type(node.op)]
        left = _compile(node.left, functions, max_bits)
        right = _compile(node.right, functions, max_bits)
        if isinstance(node.op, ast.Pow):
            return lambda env: _checked_pow(left(env), right(env), max_bits)
        return lambda env: binary(left(env), right(env))
    if isinstance(node, ast.UnaryOp):
        unary = UNARY_OPERATORS[type(node.op)]
        operand = _compile(node.operand, functions, max_bits)
        return lambda env: unary(operand(env))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        function = functions[node.func.id]
        argument = _compile(node.args[0], functions, max_bits)
        return lambda env: function(argument(env))
    raise ExpressionError("unsupported syntax", type(node).__name__)  # unreachable after check


def _checked_pow(base: Value, exponent: Value, max_bits: int) -> Value:
    # Variables bound to Python ints (``step`` in schedule functions) can make
    # integer powers explode at run time; the check-time fold cannot see them.
    if (isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1
            and exponent * abs(base).bit_length() > max_bits):
        raise ExpressionError(_too_large(max_bits), f"{base}**{exponent}")
    return base**exponent
