"""Training: synthetic compositing data, BGMv2 losses, a resumable two-stage loop."""
