-- ScaleTest analysis queries (filled in by scaletest/analysis.py).

-- name: run_window
SELECT 1
