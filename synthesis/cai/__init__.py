"""CAI: Cross-domain Anomaly Injection (paper Sec. 3.1, Algorithm 1)."""
