"""Mistake: picks (a) — believes the prior-sampling estimate becomes biased (it stays unbiased; its variance explodes).

grade_id: concept_naive_mc
"""
ANSWER_NAIVE_MC = "a"
