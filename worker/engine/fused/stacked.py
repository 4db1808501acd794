"""Many jobs' problems as one: parameters stacked along a leading job dimension.

Each job's problem is built by the engine itself (its seed, its data, its split, its
initial weights), so a fused job starts exactly where it would alone. The model of the
first job serves as the template, called through ``functional_call`` with each job's
parameters:

- expression models are element-wise. ``broadcast`` evaluates the expression once on the
  stacked parameters (``[jobs, 1]``), which broadcast against the data's columns as a job's
  own do, and reduces each job's loss over its own elements; it is offered only where
  adding the job dimension cannot misalign anything (one-element parameters, 1-D columns,
  no function that reduces over elements: see ``broadcast_unfit``). ``vmap`` runs
  ``torch.func.vmap`` over the template's ``functional_call``, with the very kernels a job
  alone uses, for any expression, at the cost of torch.func's bookkeeping each step;
- built-in networks multiply matrices. ``batched`` runs each Linear layer for all jobs as
  one batched product, differentiated as a job alone's layer is (products.py), and each
  job's loss through its own loss kernel (job_losses.py); ``per_job`` runs each job's
  forward on its own slices (the very BLAS calls of a job alone). Whether a batched product
  sums as one job's product is the BLAS library's call (MKL's does under the worker's
  strict reproducibility, numerics.py), so the worker's probe (probe.py) picks the fastest
  mode that gives identical numbers.

Jobs that share data, seed, loss and model share one preparation of the data
(``prepare_data``): a sweep over optimizer options loads and splits its data once.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap

from optimlab.worker.engine.data import DatasetSource
from optimlab.worker.engine.fused.job_losses import job_losses
from optimlab.worker.engine.fused.products import stacked_linear
from optimlab.worker.engine.losses import LossPlan, correct, loss_value
from optimlab.worker.engine.models import ExpressionModule
from optimlab.worker.engine.problem import Part, PreparedData, build_problem, prepare_data
from optimlab.worker.engine.shared_problems import problem_key
from optimlab.worker.spec import ExpressionModel, JobSpec, LinearModel, LogisticModel, MLPModel

Tree = Any  # a tensor, a dict of tensors (an expression's columns), or None
Mode = Literal["broadcast", "vmap", "batched", "per_job"]

# The expression language's functions that work element by element (``sum`` and ``mean``
# reduce over elements: broadcast would reduce over every job's at once). A whitelist, so a
# function added to the language later is not broadcast before it is looked at.
ELEMENTWISE_FUNCTIONS = frozenset({"sin", "cos", "tan", "exp", "log", "sqrt", "abs", "tanh",
                                   "sigmoid", "relu", "softplus"})
# The losses broadcast computes per job: the element-wise loss, then each job's mean over its
# own elements (what the default reduction of a job alone computes); "none" is the value.
ELEMENTWISE_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": F.mse_loss, "l1": F.l1_loss, "huber": F.huber_loss}


@dataclass
class StackedPart:
    """One split of every job: inputs and targets with a leading job dimension, or shared
    by all jobs (``shared``) when every job has the same split."""

    inputs: Tree
    targets: torch.Tensor | None
    rows: int
    shared: bool

    def select(self, rows: torch.Tensor | None) -> tuple[Tree, torch.Tensor | None]:
        """The batch of each job: ``rows`` is ``[jobs, batch]`` (None: the whole split)."""
        if rows is None:
            return self.inputs, self.targets
        if self.shared:
            return _map(self.inputs, lambda t: t[rows]), _take(self.targets, rows)
        return (_map(self.inputs, lambda t: _gather(t, rows)),
                None if self.targets is None else _gather(self.targets, rows))

    def job(self, j: int, rows: torch.Tensor | None) -> tuple[Tree, torch.Tensor | None]:
        """Job j's inputs and targets (its batch ``rows``, or the whole split)."""
        inputs = self.inputs if self.shared else _map(self.inputs, lambda t: t[j])
        targets = self.targets if self.shared or self.targets is None else self.targets[j]
        if rows is None:
            return inputs, targets
        return _map(inputs, lambda t: t[rows]), _take(targets, rows)

    def keep(self, jobs: torch.Tensor) -> None:
        if not self.shared:
            self.inputs = _map(self.inputs, lambda t: t[jobs])
            self.targets = None if self.targets is None else self.targets[jobs]


@dataclass
class StackedProblem:
    template: nn.Module
    module_names: list[str]  # the names functional_call knows the parameters by
    user_names: list[str]  # the names a job alone records them under
    params: list[torch.Tensor]  # [jobs, *shape], leaves that require grad
    plan: LossPlan
    train: StackedPart
    val: StackedPart | None
    parameter_count: int  # per job
    mode: Mode
    # (name prefix, module) of a network made of Linear layers and parameter-free ones, whose
    # forward can be replayed directly; None: go through functional_call
    layers: list[tuple[str, nn.Module]] | None = None
    # broadcast: whether a job's output has a dimension (1) or is a scalar (0); set by
    # broadcast_unfit
    broadcast_dims: int = 0

    def losses(self, rows: torch.Tensor | None) -> torch.Tensor:
        """Each job's training loss on its batch: shape [jobs]."""
        if self.mode == "per_job":
            return self._losses_per_job(rows)
        if self.mode == "batched":
            return self._losses_batched(rows)
        if self.mode == "broadcast":
            return self._losses_broadcast(self.params, *self.train.select(rows))
        inputs, targets = self.train.select(rows)
        data_dim = None if self.train.shared and rows is None else 0
        objective = vmap(self._loss, in_dims=(0, data_dim, _dim(targets, data_dim)))
        result: torch.Tensor = objective(self._named(self.params), inputs, targets)
        # An expression's value may be a one-element tensor rather than a scalar.
        return result.reshape(result.shape[0])

    def _losses_broadcast(self, params: list[torch.Tensor], inputs: Tree,
                          targets: torch.Tensor | None) -> torch.Tensor:
        """Every job's loss from one evaluation of the expression on the stacked parameters.

        Each parameter is ``[jobs]`` (a job's is a scalar) or ``[jobs, 1]``, viewed as
        ``[jobs, 1]`` where the output has a dimension of its own; a column is ``[rows]``
        (shared) or ``[jobs, rows]``. So the output is ``[jobs, *a job's output]``: each
        element the very operations on the very values of that element alone."""
        assert isinstance(self.template, ExpressionModule)
        assert isinstance(inputs, dict)
        jobs = params[0].shape[0]
        env: dict[str, torch.Tensor] = dict(inputs)
        for name, p in zip(self.user_names, params, strict=True):
            env[name] = p.view(jobs, 1) if self.broadcast_dims and p.dim() == 1 else p
        output = self.template.expression.evaluate(env)
        if not isinstance(output, torch.Tensor) or output.dim() != 1 + self.broadcast_dims \
                or output.shape[0] != jobs:
            raise RuntimeError(f"broadcast gave an output of shape "
                               f"{getattr(output, 'shape', None)} for {jobs} jobs")
        if self.plan.name == "none":
            return output.reshape(jobs)
        assert targets is not None
        loss = ELEMENTWISE_LOSSES[self.plan.name](output, targets.expand_as(output),
                                                   reduction="none")
        per_job: torch.Tensor = loss.mean(dim=1)
        return per_job

    def broadcast_unfit(self) -> str | None:
        """Why this problem cannot run broadcast (None: it can): anything that could make
        the job dimension meet another, or a job's loss differ from its own in form."""
        template = self.template
        if not isinstance(template, ExpressionModule):
            return "not an expression model"
        if why := _expression_unfit(template.expression.source):
            return why
        if self.plan.classification or (self.plan.name != "none"
                                        and self.plan.name not in ELEMENTWISE_LOSSES):
            return f"loss {self.plan.name!r}"
        names = template.expression.names
        used = [(name, p) for name, p in zip(self.user_names, self.params, strict=True)
                if name in names]
        if not used:
            return "the expression uses no parameter"
        if any(p[0].numel() != 1 or p.dim() > 2 for _, p in used):
            return "a parameter of more than one element"
        dims = 0 if all(p.dim() == 1 for _, p in used) else 1
        for part in (self.train, self.val):
            if part is None:
                continue
            assert isinstance(part.inputs, dict)
            columns = [c for name, c in part.inputs.items() if name in names]
            if any(c.dim() != (1 if part.shared else 2) for c in columns):
                return "a column of more than one dimension"
            if columns:
                dims = 1
            shape = [part.rows] if columns else [1] * dims  # a job's output
            if self.plan.name == "none":
                if columns:
                    return "loss 'none' of an expression over columns"
                continue
            targets = part.targets
            if targets is None or list(targets.shape[0 if part.shared else 1:]) != shape:
                return "targets not of the output's shape"
        self.broadcast_dims = dims
        return None

    def _losses_per_job(self, rows: torch.Tensor | None) -> torch.Tensor:
        slices = [p.unbind(0) for p in self.params]  # unbind: one stack in the backward
        losses = []
        for j in range(self.params[0].shape[0]):
            inputs, targets = self.train.job(j, None if rows is None else rows[j])
            named = {name: s[j] for name, s in zip(self.module_names, slices, strict=True)}
            losses.append(loss_value(self.plan, self._job_output(named, inputs), targets))
        return torch.stack(losses).reshape(len(losses))

    def _losses_batched(self, rows: torch.Tensor | None) -> torch.Tensor:
        inputs, targets = self.train.select(rows)
        shared = self.train.shared and rows is None
        outputs = self._batched_output(self.params, inputs, shared=shared)
        return job_losses(self.plan, outputs, targets, shared=shared)

    def _batched_output(self, params: list[torch.Tensor], inputs: Tree, *,
                        shared: bool) -> torch.Tensor:
        """Every job's forward at once: each Linear layer one batched product (products.py)."""
        assert self.layers is not None
        named = self._named(params)
        output: torch.Tensor = inputs
        if shared:
            output = output.expand(params[0].shape[0], *output.shape)
        for prefix, layer in self.layers:
            if isinstance(layer, nn.Linear):
                output = stacked_linear(output, named[f"{prefix}weight"],
                                        named.get(f"{prefix}bias"))
            else:
                output = layer(output)
        return output

    @torch.no_grad()
    def _evaluate_batched(self, part: StackedPart) -> tuple[torch.Tensor, torch.Tensor | None]:
        outputs = self._batched_output([p.detach() for p in self.params], part.inputs,
                                       shared=part.shared)
        losses, hits = [], []
        for j in range(outputs.shape[0]):
            targets = part.targets if part.shared or part.targets is None else part.targets[j]
            losses.append(loss_value(self.plan, outputs[j], targets).reshape(()))
            if self.plan.classification and targets is not None:
                hits.append(correct(self.plan, outputs[j], targets))
        return torch.stack(losses), torch.stack(hits) if hits else None

    @torch.no_grad()
    def _evaluate_per_job(self, part: StackedPart) -> tuple[torch.Tensor, torch.Tensor | None]:
        losses, hits = [], []
        for j in range(self.params[0].shape[0]):
            inputs, targets = part.job(j, None)
            named = {name: p[j] for name, p in zip(self.module_names, self.params, strict=True)}
            output = self._job_output(named, inputs)
            losses.append(loss_value(self.plan, output, targets).reshape(()))
            if self.plan.classification and targets is not None:
                hits.append(correct(self.plan, output, targets))
        return torch.stack(losses), torch.stack(hits) if hits else None

    @torch.no_grad()
    def evaluate(self, part: StackedPart) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Each job's loss on a whole split, and for classification its count of rows
        classified right (a job alone divides that count by the rows in Python)."""
        if self.mode == "per_job":
            return self._evaluate_per_job(part)
        if self.mode == "batched":
            return self._evaluate_batched(part)
        if self.mode == "broadcast":  # no classification loss runs broadcast
            params = [p.detach() for p in self.params]
            return self._losses_broadcast(params, part.inputs, part.targets), None
        data_dim = None if part.shared else 0
        named = self._named([p.detach() for p in self.params])
        outputs = vmap(self._output, in_dims=(0, data_dim))(named, part.inputs)
        target_dim = _dim(part.targets, data_dim)
        loss = vmap(self._plan_loss, in_dims=(0, target_dim))(outputs, part.targets)
        loss = loss.reshape(loss.shape[0])
        hits = None
        if self.plan.classification and part.targets is not None:
            hits = vmap(self._correct, in_dims=(0, target_dim))(outputs, part.targets)
        return loss, hits

    def fresh(self, mode: Mode) -> StackedProblem:
        """The same jobs from the same initial parameters, to run in ``mode``: the probe and
        the run it decides on share one build (this problem itself is left as it is)."""
        copy = dataclasses.replace(
            self, params=[p.detach().clone().requires_grad_() for p in self.params],
            train=dataclasses.replace(self.train),
            val=None if self.val is None else dataclasses.replace(self.val), mode=mode)
        if mode == "broadcast" and (why := copy.broadcast_unfit()) is not None:
            raise ValueError(f"these jobs cannot run broadcast: {why}")
        return copy

    def keep(self, jobs: torch.Tensor) -> None:
        """Go on with these jobs only (the others ended)."""
        self.params = [p.detach()[jobs].requires_grad_() for p in self.params]
        for part in (self.train, self.val):
            if part is not None:
                part.keep(jobs)

    def _named(self, params: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return dict(zip(self.module_names, params, strict=True))

    def _job_output(self, params: dict[str, torch.Tensor], inputs: Tree) -> torch.Tensor:
        """One job's forward: the calls its own modules make, minus functional_call's
        swapping of every parameter in and out (most of the cost for small networks)."""
        layers = self.layers
        if layers is None:
            return self._output(params, inputs)
        output: torch.Tensor = inputs
        for prefix, layer in layers:
            if isinstance(layer, nn.Linear):
                output = F.linear(output, params[f"{prefix}weight"],
                                  params.get(f"{prefix}bias"))
            else:
                output = layer(output)
        return output

    def _output(self, params: dict[str, torch.Tensor], inputs: Tree) -> torch.Tensor:
        output: torch.Tensor = functional_call(self.template, params, (inputs,))
        return output

    def _plan_loss(self, output: torch.Tensor, targets: torch.Tensor | None) -> torch.Tensor:
        return loss_value(self.plan, output, targets)

    def _loss(self, params: dict[str, torch.Tensor], inputs: Tree,
              targets: torch.Tensor | None) -> torch.Tensor:
        return loss_value(self.plan, self._output(params, inputs), targets)

    def _correct(self, output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return correct(self.plan, output, targets)


def modes(spec: JobSpec) -> list[Mode]:
    """The ways this model can run fused, fastest first."""
    if isinstance(spec.model, ExpressionModel):
        fits = _expression_unfit(spec.model.expression) is None and \
            spec.loss in (None, "none", *ELEMENTWISE_LOSSES) and \
            all(not isinstance(v, list) or (len(v) == 1 and not isinstance(v[0], list))
                for v in spec.model.parameters.values())
        return ["broadcast", "vmap", "per_job"] if fits else ["vmap", "per_job"]
    if isinstance(spec.model, LinearModel | LogisticModel | MLPModel) and \
            not getattr(spec.model, "dropout", 0.0):
        return ["batched", "per_job"]
    return ["per_job"]


def build_stacked(specs: list[JobSpec], *, device: torch.device | str,
                  source: DatasetSource | None = None, mode: Mode | None = None
                  ) -> StackedProblem:
    prepared: dict[bytes, PreparedData] = {}  # one per distinct problem (data, seed, model)
    problems = []
    for spec in specs:
        key = problem_key(spec)
        if key not in prepared:
            prepared[key] = prepare_data(spec, device=device, source=source)
        problems.append(build_problem(spec, device=device, prepared=prepared[key]))
    first = problems[0]
    module_names = [name for name, _ in first.model.named_parameters()]
    params = [torch.stack([dict(p.model.named_parameters())[name].detach() for p in problems])
              .requires_grad_() for name in module_names]
    val = None
    if first.val is not None:
        val = _stack_parts([p.val for p in problems if p.val is not None])
    offered = modes(specs[0])
    stacked = StackedProblem(
        template=first.model, module_names=module_names,
        user_names=[name for name, _ in first.parameters], params=params, plan=first.plan,
        train=_stack_parts([p.train for p in problems]), val=val,
        parameter_count=first.parameter_count, mode=mode or offered[0],
        layers=_plain_layers(first.model))
    if stacked.mode == "broadcast" and (why := stacked.broadcast_unfit()) is not None:
        if mode is not None:
            raise ValueError(f"these jobs cannot run broadcast: {why}")
        stacked.mode = offered[1]  # the fastest mode but for the data: the next one
    return stacked


def _expression_unfit(source: str) -> str | None:
    """Why an expression may not be evaluated broadcast over jobs: a function that is not
    element-wise (None: there is none)."""
    try:
        tree = ast.parse(source.strip(), mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return "an expression that does not parse"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and not (
                isinstance(node.func, ast.Name) and node.func.id in ELEMENTWISE_FUNCTIONS):
            return "a function that is not element-wise"
    return None


def _plain_layers(model: nn.Module) -> list[tuple[str, nn.Module]] | None:
    if isinstance(model, nn.Linear):
        return [("", model)]
    if not isinstance(model, nn.Sequential):
        return None
    layers: list[tuple[str, nn.Module]] = []
    for name, layer in model.named_children():
        if not isinstance(layer, nn.Linear) and any(True for _ in layer.parameters()):
            return None
        if isinstance(layer, nn.Dropout):
            return None  # a job alone draws its mask from the global stream
        layers.append((f"{name}.", layer))
    return layers


def _stack_parts(parts: list[Part]) -> StackedPart:
    first = parts[0]
    if all(_same_part(first, other) for other in parts[1:]):
        return StackedPart(first.inputs, first.targets, first.rows, shared=True)
    inputs: Tree = (
        {name: torch.stack([p.inputs[name] for p in parts])  # type: ignore[index]
         for name in first.inputs} if isinstance(first.inputs, dict)
        else torch.stack([p.inputs for p in parts]))  # type: ignore[misc]
    targets = None if first.targets is None else torch.stack(
        [p.targets for p in parts if p.targets is not None])
    return StackedPart(inputs, targets, first.rows, shared=False)


def _same_part(a: Part, b: Part) -> bool:
    if a is b:
        return True
    if isinstance(a.inputs, dict) and isinstance(b.inputs, dict):
        same_inputs = a.inputs.keys() == b.inputs.keys() and all(
            torch.equal(a.inputs[k], b.inputs[k]) for k in a.inputs)
    elif isinstance(a.inputs, torch.Tensor) and isinstance(b.inputs, torch.Tensor):
        same_inputs = torch.equal(a.inputs, b.inputs)
    else:
        return False
    if a.targets is None or b.targets is None:
        return same_inputs and a.targets is None and b.targets is None
    return same_inputs and torch.equal(a.targets, b.targets)


def _dim(tensor: torch.Tensor | None, dim: int | None) -> int | None:
    return None if tensor is None else dim


def _map(tree: Tree, function: Callable[[torch.Tensor], torch.Tensor]) -> Tree:
    if isinstance(tree, dict):
        return {name: function(value) for name, value in tree.items()}
    return function(tree)


def _take(tensor: torch.Tensor | None, rows: torch.Tensor) -> torch.Tensor | None:
    return None if tensor is None else tensor[rows]


def _gather(stacked: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """Row ``rows[j, k]`` of job j's data, for every j and k: ``[jobs, batch, ...]``."""
    jobs = torch.arange(stacked.shape[0], device=stacked.device).unsqueeze(1)
    return stacked[jobs, rows]
