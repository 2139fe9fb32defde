"""Mistake: picks (a) — believes the flattening order does not matter.

grade_id: concept_row_major
"""
ANSWER_ROW_MAJOR = "a"
