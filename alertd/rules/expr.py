"""The rule expression grammar: text -> a small tree of frozen nodes. Never eval.

    expr    := or
    or      := and ("or" and)*
    and     := not ("and" not)*
    not     := "not" not | cmp
    cmp     := add (("<" | "<=" | ">" | ">=" | "==" | "!=") add)?
    add     := mul (("+" | "-") mul)*
    mul     := unary (("*" | "/") unary)*
    unary   := "-" unary | atom
    atom    := NUMBER | NAME | NAME "(" [expr ("," expr)*] ")" | "(" expr ")" | `quoted metric`

A NAME is a variable, a series alias, `step`, or a metric name; which one is decided when the
rule is compiled (see compile.py). Metric names with other characters go in backticks:
`train/loss_text`, or a selector: `*loss*`, `re:dbg/grad_.*`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass


class ExprError(ValueError):
    """A syntax error, with the column (0-based) where it was found."""

    def __init__(self, message: str, col: int):
        super().__init__(f"{message} (at column {col + 1})")
        self.col = col


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Name:
    name: str
    quoted: bool = False  # written in backticks: always a metric or selector


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / < <= > >= == != and or
    left: object
    right: object


@dataclass(frozen=True)
class Not:
    arg: object


@dataclass(frozen=True)
class Neg:
    arg: object


Node = Num | Name | Call | BinOp | Not | Neg

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<quoted>`[^`]*`)
  | (?P<op><=|>=|==|!=|[-+*/<>(),])
""", re.VERBOSE)

_CMP = {"<", "<=", ">", ">=", "==", "!="}


def _tokenize(text: str) -> list[tuple[str, str, int]]:
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise ExprError(f"unexpected character {text[pos]!r}", pos)
        kind = m.lastgroup
        if kind != "ws":
            tokens.append((kind, m.group(), pos))
        pos = m.end()
    tokens.append(("end", "", len(text)))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.tokens = _tokenize(text)
        self.i = 0

    def peek(self) -> tuple[str, str, int]:
        return self.tokens[self.i]

    def take(self) -> tuple[str, str, int]:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        kind, text, col = self.take()
        if text != value:
            raise ExprError(f"expected {value!r}, found {text or 'end of expression'!r}", col)

    def is_word(self, word: str) -> bool:
        kind, text, _ = self.peek()
        return kind == "name" and text == word

    def parse(self) -> Node:
        node = self.or_()
        kind, text, col = self.peek()
        if kind != "end":
            raise ExprError(f"unexpected {text!r}", col)
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self.is_word("or"):
            self.take()
            node = BinOp("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.is_word("and"):
            self.take()
            node = BinOp("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.is_word("not"):
            self.take()
            return Not(self.not_())
        return self.cmp()

    def cmp(self) -> Node:
        node = self.add()
        if self.peek()[1] in _CMP:
            op = self.take()[1]
            node = BinOp(op, node, self.add())
            if self.peek()[1] in _CMP:
                raise ExprError("chained comparison: use 'and'", self.peek()[2])
        return node

    def add(self) -> Node:
        node = self.mul()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            node = BinOp(op, node, self.mul())
        return node

    def mul(self) -> Node:
        node = self.unary()
        while self.peek()[1] in ("*", "/") and self.peek()[0] == "op":
            op = self.take()[1]
            node = BinOp(op, node, self.unary())
        return node

    def unary(self) -> Node:
        if self.peek()[1] == "-" and self.peek()[0] == "op":
            self.take()
            arg = self.unary()
            return Num(-arg.value) if isinstance(arg, Num) else Neg(arg)
        return self.atom()

    def atom(self) -> Node:
        kind, text, col = self.take()
        if kind == "num":
            return Num(float(text))
        if kind == "quoted":
            if len(text) < 3:
                raise ExprError("empty metric name in backticks", col)
            return Name(text[1:-1], quoted=True)
        if kind == "name":
            if text in ("and", "or", "not"):
                raise ExprError(f"unexpected {text!r}", col)
            if self.peek()[1] == "(":
                self.take()
                args = []
                if self.peek()[1] != ")":
                    args.append(self.or_())
                    while self.peek()[1] == ",":
                        self.take()
                        args.append(self.or_())
                self.expect(")")
                return Call(text, tuple(args))
            return Name(text)
        if text == "(":
            node = self.or_()
            self.expect(")")
            return node
        raise ExprError(f"unexpected {text or 'end of expression'!r}", col)


def parse(text: str) -> Node:
    """Parse an expression into a tree; raises ExprError with the column on bad input."""
    if not isinstance(text, str) or not text.strip():
        raise ExprError("empty expression", 0)
    return _Parser(text).parse()


def walk(node: Node):
    """Yield every node of the tree, parents before children."""
    yield node
    if isinstance(node, Call):
        for arg in node.args:
            yield from walk(arg)
    elif isinstance(node, BinOp):
        yield from walk(node.left)
        yield from walk(node.right)
    elif isinstance(node, (Not, Neg)):
        yield from walk(node.arg)


def value_node(node: Node) -> Node:
    """The part of a condition whose value an alert reports (like PromQL's filtered sample)."""
    if isinstance(node, BinOp) and node.op in _CMP:
        return node.left
    if isinstance(node, BinOp) and node.op in ("and", "or"):
        # "step >= warmup and loss > x": report the part that is about a metric, not the step.
        left = value_node(node.left)
        if isinstance(left, Name) and left.name == "step" and not left.quoted:
            return value_node(node.right)
        return left
    if isinstance(node, Not):
        return value_node(node.arg)
    if isinstance(node, Call) and node.args and node.func in ("not_finite", "is_nan", "is_inf", "finite"):
        return node.args[0]
    return node


def threshold_node(cond: Node, value: Node) -> Node | None:
    """The other side of the comparison that tests `value` (drawn as the threshold in plots)."""
    for n in walk(cond):
        if isinstance(n, BinOp) and n.op in _CMP:
            if n.left == value:
                return n.right
            if n.right == value:
                return n.left
    return None
