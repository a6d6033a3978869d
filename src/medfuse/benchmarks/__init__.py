"""medfuse.benchmarks."""
