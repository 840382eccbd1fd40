"""Internal helpers (batch statistics, input checks, autodiff)."""
