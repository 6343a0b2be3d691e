"""The rule grammar: text -> tree, errors with columns, nothing executed."""
import pytest

from alertd.rules.expr import BinOp, Call, ExprError, Name, Neg, Not, Num, parse, value_node


def test_precedence_and_associativity():
    tree = parse("a + b * c > 2 and not d or e")
    assert tree == BinOp("or",
                         BinOp("and",
                               BinOp(">", BinOp("+", Name("a"), BinOp("*", Name("b"), Name("c"))), Num(2.0)),
                               Not(Name("d"))),
                         Name("e"))
    assert parse("a - b - c") == BinOp("-", BinOp("-", Name("a"), Name("b")), Name("c"))


def test_calls_numbers_and_quoted_names():
    tree = parse("abs(`train/loss_text` - log(num_classes)) < 2e-2 * -x")
    assert tree.left == Call("abs", (BinOp("-", Name("train/loss_text", quoted=True),
                                           Call("log", (Name("num_classes"),))),))
    assert tree.right == BinOp("*", Num(0.02), Neg(Name("x")))
    assert parse("-3") == Num(-3.0)
    assert parse("mean(x, 50)") == Call("mean", (Name("x"), Num(50.0)))


@pytest.mark.parametrize("text,col", [
    ("loss >", 6), ("(loss", 5), ("loss > 1 > 2", 9), ("loss $ 2", 5), ("", 0), ("f(a,)", 4),
    ("and x", 0), ("``", 0),
])
def test_errors_name_the_column(text, col):
    with pytest.raises(ExprError) as e:
        parse(text)
    assert e.value.col == col
    assert f"column {col + 1}" in str(e.value)


def test_python_is_not_code_here():
    # Text that would do something under eval() is a syntax error or plain names here.
    for text in ("__import__('os').system('true')", "open('/etc/passwd')", "x.__class__", "[x for x in y]"):
        with pytest.raises(ExprError):
            parse(text)


def test_value_node_reports_the_metric_side():
    assert value_node(parse("loss > 5")) == Name("loss")
    assert value_node(parse("step >= 100 and abs(loss - 2) < 1")) == parse("abs(loss - 2)")
    assert value_node(parse("not_finite(x)")) == Name("x")
