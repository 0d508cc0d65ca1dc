"""Chapter 04: Easy Consistency Tuning (ECT): its configuration, experiments and evaluation metrics."""
