"""Evaluation of MEAP and NTP checkpoints, run offline: prompts come from seeded RNGs and local text."""
