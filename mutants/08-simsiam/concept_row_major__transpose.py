"""Mistake: picks (b) — believes the row-major Hessian is the transpose (H is symmetric: that would change nothing).

grade_id: concept_row_major
"""
ANSWER_ROW_MAJOR = "b"
