"""CDM: CAI-guided diffusion mechanism (paper Sec. 3.3)."""
