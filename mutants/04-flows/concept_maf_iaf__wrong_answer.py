"""Mistake: picks (b) — believes the IAF evaluates an external point's density in one pass.

grade_id: concept_maf_iaf
"""
ANSWER_MAF_IAF = "b"
