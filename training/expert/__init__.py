"""The expert planner: hand-written layout builders (belt routing first) that generate
lesson solutions and set the baseline the learned policy must beat."""
