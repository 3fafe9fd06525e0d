"""What DAAD is for: CAI (training-free injection) and CDM (diffusion), installed as `daad.synthesis`."""
