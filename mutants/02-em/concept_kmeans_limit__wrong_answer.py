"""Mistake: picks (b) — believes k-means is the limit of learnt variances shrinking (that is the collapse).

grade_id: concept_kmeans_limit
"""
ANSWER_KMEANS_LIMIT = "b"
