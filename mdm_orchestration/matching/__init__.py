"""Matching: which cleansed records are the same person or organisation (no Dagster in here).

``blocking`` (our candidate pairs), ``rules`` (deterministic matches), ``model`` (dedupe's
comparators and classifier: ``train_model``, ``load_model``), ``clustering`` (dedupe's
hierarchical clustering with steward constraints), ``engine`` (``match_records``), ``labels``
(the shipped default labels), ``evaluation`` (metrics against ground truth) and ``store``
(the hub side: labels, overrides, models, clusters, review queue).
"""
