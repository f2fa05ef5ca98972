//! Harness for interop tests: real peers started by PID, bounded waits, results for the matrix.
