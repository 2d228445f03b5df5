"""Supervised trio actors."""
