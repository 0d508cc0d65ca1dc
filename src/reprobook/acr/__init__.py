"""Chapter 05: memorization as adversarial compression (the Adversarial Compression Ratio)."""
