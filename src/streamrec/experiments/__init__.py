"""A/B testing: experiment definitions, assignment by hashing, exposure logging, analysis and decisions."""
