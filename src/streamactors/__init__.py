"""streamactors."""
