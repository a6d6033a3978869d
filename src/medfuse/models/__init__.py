"""medfuse.models."""
