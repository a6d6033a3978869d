"""medfuse.bundle."""
