"""medfuse.devices."""
