"""medfuse.calibration."""
