//! Call bots: scenarios, runner, assertions, load, reports.
