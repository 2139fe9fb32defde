"""Mistake: picks (b) — believes the predictor alone prevents collapse (without stop-gradient H ⪰ X'⊗I for every predictor).

grade_id: concept_what_prevents_collapse
"""
ANSWER_PREVENTS_COLLAPSE = "b"
