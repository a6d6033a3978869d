"""medfuse.export."""
