"""medfuse.synthetic."""
