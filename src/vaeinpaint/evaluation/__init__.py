"""Scoring restorations: the model's and the classical fills', on the same masks."""
