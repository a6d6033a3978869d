"""``medfuse <verb>``: a thin layer over the public API (heavy imports happen inside verbs)."""
