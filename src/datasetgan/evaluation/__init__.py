"""Scoring downstream models on real labelled images: metrics, cross-validation, reports."""
