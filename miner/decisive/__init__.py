"""The decisive step of failed runs: candidate spans, their features, the learned ranker, reviewers' marks."""
