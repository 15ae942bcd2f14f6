"""Jinja's immutable sandbox with the template limits built in (see template_limits): bounded arithmetic,
bounded filters and method calls, and a budget per message that loops, macros and output spend.

Jinja offers the hooks: `intercepted_binops` route `+ * ** %` through `call_binop` (and, being intercepted,
they are no longer folded while compiling, which is what made `{{ 9**(9**9) }}` hang validation); `call` sees
every call a template makes; a pass_context `finalize` sees every value printed. What Jinja has no hook for
(loop iterations, list and mapping literals, `~`) is added by a code generator that writes a call to the
environment around them. The budget lives on the template's Context, so every way of rendering spends it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2 import nodes, pass_context
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from outreach.campaigns.filter_limits import FILTER_CHECKS, bounded_json_dumps
from outreach.campaigns.template_limits import (
    CALL_STEPS,
    INTERCEPTED_BINOPS,
    MAX_VALUE_SIZE,
    RenderBudget,
    bounded_binop,
    check_method_call,
    check_value,
)


class _BudgetedContext(Context):
    """A template's context, holding what its message may still spend."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = RenderBudget()

    def derived(self, locals: dict[str, Any] | None = None) -> Context:
        context = super().derived(locals)
        context.budget = self.budget  # type: ignore[attr-defined]  # a scoped block spends the message's budget
        return context


def budget_of(context: Any) -> RenderBudget | None:
    """The budget of a rendering, or None while a campaign is validated (nothing is rendered then)."""
    return getattr(context, "budget", None)


def _node_count(body: list[nodes.Node]) -> int:
    """The steps one run of `body` costs: one, and one for each node in it."""
    return 1 + sum(1 + sum(1 for _ in node.find_all(nodes.Node)) for node in body)


def _literal_characters(body: list[nodes.Node]) -> int:
    return sum(len(data.data) for node in body for data in node.find_all(nodes.TemplateData))


class _BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, writing in what the sandbox has no hook for: each loop iteration and macro
    call charges its body's size, and list, tuple and mapping literals and `~` are checked as they are built."""

    def visit_For(self, node: nodes.For, frame: Frame) -> None:
        with self._charged(node):
            super().visit_For(node, frame)

    def visit_Macro(self, node: nodes.Macro, frame: Frame) -> None:
        with self._charged(node):
            super().visit_Macro(node, frame)

    def visit_CallBlock(self, node: nodes.CallBlock, frame: Frame) -> None:
        with self._charged(node):
            super().visit_CallBlock(node, frame)

    @contextmanager
    def _charged(self, node: nodes.For | nodes.Macro | nodes.CallBlock) -> Iterator[None]:
        """`node` with a charge of its body's size as the body's first statement (and, for a loop with an
        `if`, before each test), for as long as the code is written; the tree is left as it was."""
        body = node.body
        test = node.test if isinstance(node, nodes.For) else None
        # Jinja allows no node types of one's own: a call of `environment.charge`, which no template can write,
        # stands for the charge, and visit_Call writes it as a plain call
        charge = nodes.Call(
            nodes.EnvironmentAttribute("charge"),
            [nodes.Const(_node_count(body)), nodes.Const(_literal_characters(body))],
            [],
            None,
            None,
        )
        charge.set_lineno(node.lineno).set_environment(self.environment)
        statement = nodes.ExprStmt(charge, lineno=node.lineno, environment=self.environment)
        node.body = [statement, *body]
        if isinstance(node, nodes.For) and test is not None:
            node.test = nodes.And(charge, test, lineno=test.lineno, environment=self.environment)
        try:
            yield
        finally:
            node.body = body
            if isinstance(node, nodes.For):
                node.test = test

    def visit_Call(self, node: nodes.Call, frame: Frame, forward_caller: bool = False) -> None:
        if isinstance(node.node, nodes.EnvironmentAttribute) and node.node.name == "charge":
            steps, characters = (int(arg.value) for arg in node.args if isinstance(arg, nodes.Const))
            self.write(f"environment.charge(context, {steps}, {characters})")
        else:
            super().visit_Call(node, frame, forward_caller=forward_caller)

    def visit_List(self, node: nodes.List, frame: Frame) -> None:
        self._built(super().visit_List, node, frame)

    def visit_Dict(self, node: nodes.Dict, frame: Frame) -> None:
        self._built(super().visit_Dict, node, frame)

    def visit_Tuple(self, node: nodes.Tuple, frame: Frame) -> None:
        if node.ctx == "load":  # not the target of `{% for a, b in ... %}` or `{% set a, b = ... %}`
            self._built(super().visit_Tuple, node, frame)
        else:
            super().visit_Tuple(node, frame)

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self._built(super().visit_Concat, node, frame)

    def _built(self, visit: Callable[[Any, Frame], None], node: nodes.Expr, frame: Frame) -> None:
        self.write("environment.built(context, ")
        visit(node, frame)
        self.write(")")


@pass_context
def _finalize(context: Context, value: Any) -> Any:
    """Every value a template prints, paid for and checked before it is turned into text."""
    if type(value) is str and len(value) <= MAX_VALUE_SIZE:  # most outputs: the check inlined, it runs so often
        budget = context.budget  # type: ignore[attr-defined]
        budget.characters -= len(value)
        if budget.characters < 0:
            raise budget.overspent()
        return value
    return check_value(value, budget_of(context), "the value printed")


_READ = (str, list, tuple, dict)  # what a filter reads item by item (an Undefined is not touched)


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` as a filter whose input is paid for, whose arguments are checked before it runs when it is
    one that can repeat (FILTER_CHECKS), and whose result is checked after."""
    check = FILTER_CHECKS.get(name)
    passes = getattr(getattr(function, "jinja_pass_arg", None), "name", None)
    what = f"the filter {name}"

    @pass_context
    @functools.wraps(function)
    def bounded(context: Context, value: Any, *args: Any, **kwargs: Any) -> Any:
        budget = budget_of(context)
        if budget is not None:  # a filter's own work is about one step per character or item it reads
            budget.spend_steps(len(value) if isinstance(value, _READ) else 1)
        if check is not None:
            value = check(value, *args, **kwargs)
        if passes is None:
            result = function(value, *args, **kwargs)
        elif passes == "context":
            result = function(context, value, *args, **kwargs)
        elif passes == "eval_context":
            result = function(context.eval_ctx, value, *args, **kwargs)
        else:
            result = function(context.environment, value, *args, **kwargs)
        return check_value(result, budget, what)

    return bounded


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with Jinja's filters and `filters` held to the template limits."""

    intercepted_binops = INTERCEPTED_BINOPS
    code_generator_class = _BoundedCodeGenerator
    context_class = _BudgetedContext

    def __init__(self, filters: Mapping[str, Callable[..., Any]], **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.policies["json.dumps_function"] = bounded_json_dumps
        every = {**self.filters, **filters}
        self.filters = {name: _bounded_filter(name, function) for name, function in every.items()}

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        return bounded_binop(operator, left, right, budget_of(context))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        budget = budget_of(__context)
        if budget is not None:
            budget.spend_steps(CALL_STEPS)
        args = check_method_call(__obj, args, kwargs)
        return check_value(super().call(__context, __obj, *args, **kwargs), budget, "the call")

    def built(self, context: Context, value: Any) -> Any:
        """A list, tuple or mapping literal or a `~` the template just built, checked."""
        return check_value(value, budget_of(context))

    def charge(self, context: Context, steps: int, characters: int) -> bool:
        """A loop iteration or macro call: its body's size in steps, its literal text in characters."""
        budget = budget_of(context)
        if budget is not None:
            budget.spend_steps(steps)
            budget.spend_characters(characters)
        return True
