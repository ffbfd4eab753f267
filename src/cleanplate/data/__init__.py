"""Training and evaluation data: ground-truth subjects, procedural subjects, plate perturbations."""
