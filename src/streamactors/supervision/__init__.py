"""Supervision: restarting crashed actors."""
