"""Mistake: lets SymPy do the derivation — the log-ratio expanded by `expand_log`, then the whole integral evaluated by `.doit()`.

grade_id: kl_derivation_steps
"""
z, mu_q, mu_p, sigma_q, sigma_p = kl_symbols()
q = sp.exp(-(z - mu_q) ** 2 / (2 * sigma_q ** 2)) / sp.sqrt(2 * sp.pi * sigma_q ** 2)   # the density of q

start = kl_derivation_start()
expanded = sp.Integral(sp.expand_log(start.function, force=True), (z, -sp.oo, sp.oo))
KL_STEPS = [start, expanded, expanded.doit()]
derivation_report(KL_STEPS)
