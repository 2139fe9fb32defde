"""Mistake: picks (a) — believes the JSD of two nearby point masses is small (it is log 2).

grade_id: concept_disjoint_jsd
"""
ANSWER_DISJOINT_JSD = "a"
