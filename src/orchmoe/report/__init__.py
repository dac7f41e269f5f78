"""Tables, figures and provenance traces, generated from the workflow's result files (never typed by hand)."""
