"""Evaluation tools of the risk engine (not used at runtime): simulate → replay → report, in the RBA schema."""
