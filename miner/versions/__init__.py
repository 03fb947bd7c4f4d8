"""Configuration versions in the miner: failure rate per version, what changed, sequential tests, rollouts."""
