"""dgm: the support library of *Deep Generative Models — derive it, then build it*.

One module per model family, functions named after the math, shapes in every docstring:

* :mod:`dgm.divergences` — entropy, cross-entropy, KL (closed form and Monte Carlo);
* :mod:`dgm.distributions` — log-densities and reparameterised sampling;
* :mod:`dgm.linear_gaussian` — the tractable latent model of Chapter 1;
* :mod:`dgm.mixtures` — discrete-latent (mixture) models;
* :mod:`dgm.em` — Gaussian mixtures fitted by EM, k-means, PCA and probabilistic PCA (Chapter 2);
* :mod:`dgm.vae` — variational autoencoders: ELBO, IWAE, reparameterisation, discrete-latent gradient
  estimators, amortised and per-datapoint inference (Chapter 3);
* :mod:`dgm.flows` — normalizing flows (coupling, RealNVP, MAF, IAF) and MADE (Chapter 4);
* :mod:`dgm.sampling` — inverse CDF, rejection, importance sampling, Markov chains, MH, Gibbs, Langevin, MALA,
  ESS (Chapter 6);
* :mod:`dgm.score` — energy-based models, contrastive divergence, score matching, annealed Langevin (Chapter 6);
* :mod:`dgm.diffusion` — DDPM: schedules, forward process, posterior, sampling, losses, VLB (Chapter 7);
* :mod:`dgm.gan` — GAN losses, optimal discriminator, f-divergences, Wasserstein (Chapter 5);
* :mod:`dgm.ssl` — SimSiam's linear model: objective, gradient flows, collapse, effective rank (Chapter 8);
* :mod:`dgm.nets` — small networks shared by chapters;
* :mod:`dgm.classifiers` — logistic regression and naive Bayes (Chapter 1);
* :mod:`dgm.data` — datasets that ship with packages, and MNIST from a local path;
* :mod:`dgm.plotting` — figures shared by several chapters;
* :mod:`dgm.tables` — the aligned text tables the chapters print;
* :mod:`dgm.device` — device selection and seeded generators.

The exercises' checks are not part of it: they live in the ``coursework`` package, which imports
``dgm``; nothing here imports ``coursework`` or the grader.
"""

__version__ = "0.1.0"
