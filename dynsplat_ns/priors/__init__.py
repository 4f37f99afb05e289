"""Priors and seeding: depth priors, motion masks, seed points estimated or split from the data."""
