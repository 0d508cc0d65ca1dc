"""Chapter 08: prompt inversion for text-to-image models (discrete optimizers vs a captioner)."""
