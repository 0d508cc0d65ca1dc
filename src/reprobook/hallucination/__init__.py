"""Chapter 03: hallucinations in diffusion models through mode interpolation."""
