"""``python -m benchmarks`` (``make bench``): every timing budget of the course, measured on this
machine and printed as one table.

The test suite asserts no wall-clock time: on a loaded machine a correct notebook can take twice
as long, and a test that fails then says nothing about the code. The budgets live here instead,
measured on demand, on a machine you know the load of:

========================  ==============================================  ===================
part (``--only``)         what is timed                                   budget
========================  ==============================================  ===================
``chapters``              each numbered chapter of ``_toc.yml``           120 s per chapter
                          (``book/NN-*.md``), executed as the site build
                          does it (:mod:`benchmarks.notebooks`)
``exercises``             each solution ``solutions/<a>/<a>.ipynb``,      60 s per notebook
                          executed in its own folder (as tests/test_nbval.py runs it)
``grading``               a synthetic class of each assignment, graded    15 s per notebook
                          with 1 and 2 workers (:mod:`benchmarks.grading`,
                          reusing :mod:`autograder.benchmark`)
``sampler``               ``GaussianDiffusion.p_sample_loop`` over a      ratio 2.0
                          bare loop calling the same tiny network
                          (:mod:`benchmarks.sampler`), best of 5
``em``                    ``dgm.em.fit_em`` against scikit-learn's         ratio 1/3 (3x
                          ``GaussianMixture`` from the same start          faster), same
                          (N = 200 000, D = 8, K = 16, 30 iterations),     answer to 1e-5
                          diagonal and full covariances, best of 3
                          (:mod:`benchmarks.em`)
========================  ==============================================  ===================

Every row says what it measured, its budget and a verdict (:mod:`benchmarks.table`). Exit status:
0 when every budget holds, 1 when one is broken (the rows are named), 2 when something could not
run (a notebook raised, no sandbox for grading, the two sampling loops drew different samples).
"""
