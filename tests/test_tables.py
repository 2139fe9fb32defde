"""Tests of dgm.tables.print_table, the aligned tables the chapters print. Expected outputs are written out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dgm.tables import print_table


def printed(capsys, *args, **kwargs) -> list[str]:
    print_table(*args, **kwargs)
    return capsys.readouterr().out.split("\n")[:-1]


def test_exact_output_of_a_small_table(capsys):
    lines = printed(capsys, [("H(p)", 1.75, 2.0), ("KL(p||q)", 0.25, 0.2499)], ["", "exact", "Monte Carlo"])
    assert lines == [
        "             exact  Monte Carlo",
        "H(p)      1.750000     2.000000",
        "KL(p||q)  0.250000     0.249900",
    ]


def test_first_column_left_aligned_the_others_right_aligned_to_the_widest_cell(capsys):
    lines = printed(capsys, [("a", 1.0, -12345.5), ("longer label", 0.5, 0.0)], ["name", "x", "a long title"])
    assert lines == [
        "name" + " " * 17 + "x" + " " * 3 + "a long title",  # widths 12 (a label), 8 (a number), 13 (-12345.500000)
        "a" + " " * 13 + "1.000000  -12345.500000",
        "longer label  0.500000" + " " * 7 + "0.000000",
    ]


def test_strings_are_printed_as_they_are_numbers_with_the_given_decimals(capsys):
    rows = [("n = 10", "0.1", 3, np.float64(0.123456789), torch.tensor(2.5, dtype=torch.float64))]
    header = ["", "s", "int", "numpy", "tensor"]
    assert printed(capsys, rows, header) == [
        " " * 10 + "s" + " " * 7 + "int" + " " * 5 + "numpy" + " " * 4 + "tensor",
        "n = 10  0.1  3.000000  0.123457  2.500000",  # the string "0.1" is not reformatted
    ]
    assert printed(capsys, rows, header, digits=2)[1] == "n = 10  0.1  3.00   0.12    2.50"  # now the titles are wider
    assert printed(capsys, [("x", float("nan"), float("-inf"))], ["", "a", "b"])[1] == "x  nan  -inf"  # no digits to pad


def test_rows_may_be_a_generator_and_a_table_may_have_no_rows(capsys):
    assert printed(capsys, ((f"x{i}", i / 4) for i in range(2)), ["", "v"]) == [" " * 11 + "v", "x0  0.000000", "x1  0.250000"]
    assert printed(capsys, [], ["label", "value"]) == ["label  value"]


@pytest.mark.parametrize("row", [("a", 1.0), ("a", 1.0, 2.0, 3.0)])
def test_a_row_of_the_wrong_length_is_an_error_naming_the_row(capsys, row):
    with pytest.raises(ValueError, match=r"row 1 must have one cell per column of the header \(3: \['', 'x', 'y'\]\); got \d cells"):
        print_table([("ok", 1.0, 2.0), row], ["", "x", "y"])
    assert capsys.readouterr().out == ""  # nothing is printed before the check


@pytest.mark.parametrize("digits, error", [(-1, ValueError), (2.0, TypeError), (True, TypeError)])
def test_digits_must_be_a_non_negative_integer(digits, error):
    with pytest.raises(error, match="digits must be a non-negative integer"):
        print_table([("a", 1.0)], ["", "x"], digits=digits)
