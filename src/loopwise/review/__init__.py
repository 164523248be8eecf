"""Human review (the Augmented AI part): flow definitions, activation conditions on live predictions,
human loops and their lifecycle, and their answers flowing back as ground truth and training data."""
